/*
 * rush-loadgen — drives rushd with Double-11 traffic and reports what it measured.
 *
 *   rush-loadgen [--scenario midnight|zipf|groups|duplicates|payments] [--mode closed|open]
 *                [--rate N] [--connections N] [--batch N] [--inflight N] [--buyers N] ...
 *   (rush-loadgen --help lists every option; loadgen/options.h is the contract)
 *
 * A run, in order:
 *   1. parse and check the options (exit 2 on a usage error);
 *   2. plan the SKUs (loadgen/catalog.h): fresh ones put through the admin endpoint with the
 *      token, or the built-in campaign's with --campaign-skus; query them on the orders endpoint
 *      (exit 3 when rushd does not answer or refuses the set-up);
 *   3. run the scenario (loadgen/scenario.h) through the driver (loadgen/driver.h), logging
 *      every request and its answer in the ledger (loadgen/ledger.h), a progress line a second;
 *   4. query the SKUs again, print the report, write --report FILE.json (loadgen/report.h);
 *   5. check the ledger's invariants; with --verify, the run against the stream (verify.h),
 *      which was followed from before the first request.
 *
 * Exit status: 0 the run finished and was reported; 1 nothing was answered, or the report file
 * could not be written; 2 usage error; 3 rushd unreachable or the set-up refused; 4 a violation.
 *
 * Signals: the first SIGINT or SIGTERM stops sending; what is in flight is awaited (at most
 * --timeout-ms) and reported. A second one kills the process.
 *
 * Threads: the calling thread parses, sets up, watches the run (stop flag, a progress line a
 * second) and reports; --threads driver threads carry the load (loadgen/driver.h); nanomsg has
 * its own worker thread; --verify one subscriber thread per node followed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "catalog.h"
#include "driver.h"
#include "ledger.h"
#include "options.h"
#include "report.h"
#include "scenario.h"
#include "verify.h"

#define EXIT_RAN 0
#define EXIT_NOTHING_ANSWERED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define EXIT_VIOLATION 4

static volatile sig_atomic_t stop_requested;

static void on_signal(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction action = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/*
 * Keys and user ids of this run: fresh SKUs give their base id (distinct per run by
 * construction); campaign SKUs, whose state outlives runs, a random 56-bit number.
 */
static uint64_t choose_run_id(const struct rush_catalog *catalog)
{
    uint64_t id = catalog->base_id;
    if (!catalog->fresh && getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u;
    return id != 0 ? id : 1;
}

/* Steps 1..2: options and SKUs. EXIT_RAN or the exit status to leave with. */
static int set_up(int argc, char **argv, struct rush_loadgen_options *options,
                  struct rush_catalog *catalog)
{
    char why[RUSH_LOADGEN_WHY_BYTES] = "";
    rush_loadgen_options_default(options);
    int rc = rush_loadgen_options_parse(options, argc, argv, why, sizeof(why));
    if (rc == 1)
        exit(EXIT_RAN); /* --help */
    if (rc == 0)
        rc = rush_loadgen_options_finish(options, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "rush-loadgen: %s\n(rush-loadgen --help lists the options)\n", why);
        return EXIT_USAGE;
    }
    if (rush_catalog_plan(catalog, options) != 0) {
        fprintf(stderr, "rush-loadgen: out of memory planning %u SKUs\n", options->skus);
        return EXIT_UNREACHABLE;
    }
    if (catalog->fresh) {
        rc = rush_catalog_put(catalog, options, why, sizeof(why));
        if (rc == -EINVAL) {
            fprintf(stderr, "rush-loadgen: %s\n", why);
            return EXIT_USAGE;
        }
    }
    if (rc == 0)
        rc = rush_catalog_query(catalog, options, false, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "rush-loadgen: %s\n", why);
        return EXIT_UNREACHABLE;
    }
    for (uint32_t i = 0; i < catalog->count; i++) {
        if (!catalog->skus[i].before.known) {
            fprintf(stderr, "rush-loadgen: SKU %llu is not in rushd's catalogue%s\n",
                    (unsigned long long)catalog->skus[i].def.id,
                    catalog->fresh ? "" : " (drop --campaign-skus to put fresh SKUs)");
            return EXIT_UNREACHABLE;
        }
    }
    return EXIT_RAN;
}

/*
 * Step 5: the ledger's own invariants, then, with --verify, the run checked end to end against
 * the stream (loadgen/verify.h). 0 when everything holds.
 */
static int verify_run(struct rush_verify *verify, const struct rush_catalog *catalog,
                      const struct rush_ledger *ledger)
{
    if (rush_ledger_check(ledger) != 0) {
        fprintf(stderr, "rush-loadgen: the ledger failed its own checks\n");
        return -1;
    }
    return verify != NULL && rush_verify_finish(verify, catalog, ledger, stdout) != 0 ? -1 : 0;
}

/* Steps 4..5. The exit status. */
static int finish(const struct rush_report_input *report, struct rush_catalog *catalog,
                  struct rush_verify *verify)
{
    char why[RUSH_LOADGEN_WHY_BYTES];
    if (rush_catalog_query(catalog, report->options, true, why, sizeof(why)) != 0)
        fprintf(stderr, "rush-loadgen: after the run: %s\n", why);
    rush_report_print(report, stdout);
    int status = report->tally->requests_answered > 0 ? EXIT_RAN : EXIT_NOTHING_ANSWERED;
    int rc = report->options->report_path != NULL
                 ? rush_report_write_json(report, report->options->report_path)
                 : 0;
    if (rc != 0) {
        fprintf(stderr, "rush-loadgen: cannot write %s: %s\n", report->options->report_path,
                strerror(-rc));
        status = EXIT_NOTHING_ANSWERED;
    }
    if (verify_run(verify, catalog, report->ledger) != 0)
        status = EXIT_VIOLATION;
    return status;
}

int main(int argc, char **argv)
{
    static struct rush_loadgen_options options;
    static struct rush_catalog catalog;
    static struct rush_ledger ledger;
    static struct rush_scenario scenario;
    static struct rush_tally tally;
    int status = set_up(argc, argv, &options, &catalog);
    if (status != EXIT_RAN)
        goto out_catalog;
    if (rush_ledger_init(&ledger, (uint32_t)rush_scenario_requests_max(&options)) != 0 ||
        rush_scenario_init(&scenario, &options, &catalog, choose_run_id(&catalog)) != 0) {
        fprintf(stderr, "rush-loadgen: out of memory for %llu buyers\n",
                (unsigned long long)options.buyers);
        status = EXIT_UNREACHABLE;
        goto out_ledger;
    }
    struct rush_verify *verify = NULL;
    char why[RUSH_LOADGEN_WHY_BYTES];
    if (options.verify && rush_verify_start(&options, &verify, why, sizeof(why)) != 0) {
        fprintf(stderr, "rush-loadgen: --verify: %s\n", why);
        status = EXIT_UNREACHABLE;
        goto out_scenario;
    }
    install_signals();
    struct rush_driver_input input = {.options = &options,
                                      .ledger = &ledger,
                                      .scenario = &scenario,
                                      .tally = &tally,
                                      .stop = &stop_requested};
    int rc = rush_driver_run(&input);
    if (rc != 0) {
        fprintf(stderr, "rush-loadgen: cannot start the load on %s: %s\n",
                options.node_count > 0 ? options.nodes[0]
                : options.json         ? options.json_url
                                       : options.url,
                rush_strerror(rc));
        status = EXIT_UNREACHABLE;
        goto out_scenario;
    }
    struct rush_report_input report = {.options = &options,
                                       .tally = &tally,
                                       .scenario = &scenario.stats,
                                       .catalog = &catalog,
                                       .ledger = &ledger};
    status = finish(&report, &catalog, verify);
out_scenario:
    rush_verify_free(verify);
    rush_scenario_free(&scenario);
out_ledger:
    rush_ledger_free(&ledger);
out_catalog:
    rush_catalog_free(&catalog);
    return status;
}
