/*
 * rushd — the rush engine server.
 *
 *   rushd [--config FILE] [--data-dir DIR] [--orders URL] [--json URL] [--admin URL]
 *         [--publisher URL] [--replay URL] [--http HOST:PORT] [--shards N]
 *         [--check-config FILE] [--log-level debug|info|warn|error]
 *
 * Loads the campaign (FILE, or the built-in double11 sample), starts the engine with its SKUs,
 * binds the order, JSON and admin endpoints, starts the publisher (the confirmed-order stream
 * and its replay endpoint; an empty URL turns it off) and serves until SIGTERM or SIGINT; then it
 * stops
 * taking requests, answers what is in flight, stops the engine and exits 0. A bad campaign or an
 * endpoint that cannot be bound refuses the start with the reason on stderr and exit status 1.
 * --check-config only checks FILE: "FILE: ok (N SKUs)" and 0, or "FILE:LINE: reason" and 1.
 * See proto/SERVER.md.
 *
 * Threads: main runs the server loop; the engine's shard threads; signals only set a flag.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/number.h"
#include "campaign/campaign.h"
#include "front/server.h"

#define RUSHD_EXIT_OK 0
#define RUSHD_EXIT_FAILURE 1
#define RUSHD_EXIT_USAGE 2

static struct rush_server *running_server;

static void on_stop_signal(int signal_number)
{
    (void)signal_number;
    if (running_server != NULL)
        rush_server_stop(running_server);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rushd [--config FILE] [--data-dir DIR] [--orders URL] [--json URL]\n"
            "             [--admin URL] [--publisher URL] [--replay URL] [--http HOST:PORT]\n"
            "             [--shards N] [--tcp-transport rush|nanomsg] [--check-config FILE]\n"
            "             [--log-level debug|info|warn|error]\n"
            "\n"
            "Each option overrides the campaign file; without --config the built-in Double-11\n"
            "campaign runs. Defaults (the campaign's [endpoints] and [engine] when absent):\n"
            "  --orders     tcp://127.0.0.1:7100   binary orders\n"
            "  --json       tcp://127.0.0.1:7101   JSON orders\n"
            "  --admin      tcp://127.0.0.1:7102   admin commands (with the token)\n"
            "  --publisher  tcp://127.0.0.1:7103   the confirmed-order stream (\"\": off)\n"
            "  --replay     tcp://127.0.0.1:7104   stream replay\n"
            "  --http       %s         read-only HTTP: / dashboard, /metrics (\"\": off)\n"
            "  --data-dir   %s (relative to the working directory)\n"
            "  --shards     %d\n"
            "  --tcp-transport rush   who serves tcp:// endpoints: rush (its own SP-over-TCP,\n"
            "               replies coalesced per connection) or nanomsg; clients see no\n"
            "               difference; other schemes (ipc://) always go through nanomsg\n"
            "  durability   fsync (the campaign's [engine] durability: fsync, async, none, or\n"
            "               replicated with a [cluster] section: README \"A cluster\")\n"
            "  admin token  the campaign's admin_token, else a random one written to\n"
            "               DATA_DIR/%s (mode 0600)\n"
            "  --log-level  info\n",
            RUSH_CAMPAIGN_HTTP_DEFAULT, RUSH_SERVER_DATA_DIR_DEFAULT, RUSH_SERVER_SHARDS_DEFAULT,
            RUSH_SERVER_TOKEN_FILE);
}

struct rushd_args {
    const char *config_path;
    const char *check_path;
    struct rush_server_options options;
};

/* 0, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct rushd_args *args)
{
    static const struct option long_options[] = {{"config", required_argument, NULL, 'c'},
                                                 {"data-dir", required_argument, NULL, 'd'},
                                                 {"orders", required_argument, NULL, 'o'},
                                                 {"json", required_argument, NULL, 'j'},
                                                 {"admin", required_argument, NULL, 'a'},
                                                 {"publisher", required_argument, NULL, 'p'},
                                                 {"replay", required_argument, NULL, 'r'},
                                                 {"http", required_argument, NULL, 't'},
                                                 {"shards", required_argument, NULL, 's'},
                                                 {"tcp-transport", required_argument, NULL, 'x'},
                                                 {"check-config", required_argument, NULL, 'k'},
                                                 {"log-level", required_argument, NULL, 'l'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
    enum rush_log_level level;
    char why[128];
    int option;
    while ((option = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (option) {
        case 'c':
            args->config_path = optarg;
            break;
        case 'd':
            args->options.data_dir = optarg;
            break;
        case 'o':
            args->options.orders_url = optarg;
            break;
        case 'j':
            args->options.json_url = optarg;
            break;
        case 'a':
            args->options.admin_url = optarg;
            break;
        case 'p':
            args->options.publisher_url = optarg;
            break;
        case 'r':
            args->options.replay_url = optarg;
            break;
        case 't':
            if (!rush_campaign_http_valid(optarg)) {
                fprintf(stderr, "rushd: --http must be HOST:PORT (numeric IPv4) or \"\"\n");
                return RUSHD_EXIT_USAGE;
            }
            args->options.http_address = optarg;
            break;
        case 's':
            if (rush_number_parse_u32(optarg, 1, RUSH_SHARDS_MAX, &args->options.shards, why,
                                      sizeof(why)) != 0) {
                fprintf(stderr, "rushd: --shards: %s\n", why);
                return RUSHD_EXIT_USAGE;
            }
            break;
        case 'x':
            if (strcmp(optarg, "rush") != 0 && strcmp(optarg, "nanomsg") != 0) {
                fprintf(stderr, "rushd: --tcp-transport must be rush or nanomsg\n");
                return RUSHD_EXIT_USAGE;
            }
            args->options.tcp_nanomsg = strcmp(optarg, "nanomsg") == 0;
            break;
        case 'k':
            args->check_path = optarg;
            break;
        case 'l':
            if (rush_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "rushd: --log-level must be debug, info, warn or error\n");
                return RUSHD_EXIT_USAGE;
            }
            rush_log_set_level(level);
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return RUSHD_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "rushd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return RUSHD_EXIT_USAGE;
    }
    return 0;
}

static int check_config(const char *path)
{
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    int rc = rush_campaign_load_file(path, &campaign, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "%s\n", why);
        return RUSHD_EXIT_FAILURE;
    }
    printf("%s: ok (%u SKUs)\n", path, campaign.sku_count);
    rush_campaign_free(&campaign);
    return RUSHD_EXIT_OK;
}

static int install_signals(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int serve(struct rushd_args *args)
{
    struct rush_campaign campaign;
    char why[RUSH_SERVER_WHY_BYTES];
    int rc = args->config_path != NULL
                 ? rush_campaign_load_file(args->config_path, &campaign, why, sizeof(why))
                 : rush_campaign_load_default(&campaign, why, sizeof(why));
    if (rc != 0) {
        rush_log(RUSH_LOG_ERROR, "%s", why);
        return RUSHD_EXIT_FAILURE;
    }
    rush_log(RUSH_LOG_INFO, "campaign %s: %u SKUs",
             args->config_path ? args->config_path : "(built-in double11)", campaign.sku_count);
    args->options.campaign = &campaign;
    struct rush_server *server = NULL;
    rc = rush_server_create(&args->options, &server, why, sizeof(why));
    if (rc != 0) {
        rush_log(RUSH_LOG_ERROR, "refusing to start: %s", why);
        rush_campaign_free(&campaign);
        return RUSHD_EXIT_FAILURE;
    }
    running_server = server;
    rc = install_signals();
    if (rc == 0)
        rc = rush_server_run(server);
    running_server = NULL;
    rush_server_destroy(server);
    rush_campaign_free(&campaign);
    rush_log(rc == 0 ? RUSH_LOG_INFO : RUSH_LOG_ERROR, "stopped%s%s", rc == 0 ? "" : ": ",
             rc == 0 ? "" : strerror(-rc));
    return rc == 0 ? RUSHD_EXIT_OK : RUSHD_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
    struct rushd_args args;
    memset(&args, 0, sizeof(args));
    int rc = parse_args(argc, argv, &args);
    if (rc != 0)
        return rc < 0 ? RUSHD_EXIT_OK : rc;
    if (args.check_path != NULL)
        return check_config(args.check_path);
    return serve(&args);
}
