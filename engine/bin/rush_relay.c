/*
 * rush-relay — the confirmed-order stream published to Kafka and/or NATS JetStream (relay.h;
 * README.md "Confirmed orders on Kafka / JetStream").
 *
 *   rush-relay [--pub URL] [--replay URL] [--stream PUB,REPLAY] [--shards N]
 *              [--cluster-nats URLS --cluster-stream NAME]
 *              [--kafka BROKERS] [--topic T] [--nats URLS] [--js-stream NAME]
 *              [--js-subject PREFIX] [--js-duplicate-window S] [--inflight-max N]
 *              [--flush-ms MS] [--idle-exit MS] [--help]
 *
 * Runs until SIGTERM or SIGINT (or --idle-exit), then waits for the sinks to acknowledge what
 * they were handed. Exit 0 when stopped with everything acknowledged; 1 on an error (a sink
 * failed, rushd no longer serves a range the sinks need, the flush ran out of time): restart it
 * and it resumes from what the sinks hold; 2 on usage. Thread: main (plus the libraries' own).
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/number.h"
#include "relay/relay.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define URL_PAIR_BYTES (2 * RUSH_SUBSCRIBER_URL_BYTES_MAX)

static volatile sig_atomic_t relay_stopping;

static void relay_on_signal(int signal_number)
{
    (void)signal_number;
    relay_stopping = 1;
}

static void usage(FILE *out)
{
    struct rush_relay_config d;
    rush_relay_config_default(&d);
    fprintf(out,
            "usage: rush-relay [options]  (at least one of --kafka, --nats)\n"
            "  --pub URL               rushd's stream PUB endpoint (default %s)\n"
            "  --replay URL            rushd's replay endpoint (default %s)\n"
            "  --stream PUB,REPLAY     both at once\n"
            "  --shards N              rushd's shard count (default 0: ask rushd; required with\n"
            "                          --cluster-stream)\n"
            "  --cluster-nats URLS     read the cluster's replicated log instead of one rushd's\n"
            "                          stream: its NATS servers, nats://host:port[,...]\n"
            "  --cluster-stream NAME   ... and its JetStream stream (rushd's [cluster] stream);\n"
            "                          the same events and seqs, and no node to lose\n"
            "  --kafka BROKERS         Kafka bootstrap servers, host:port[,...] (default: off)\n"
            "  --topic T               Kafka topic, one partition per shard at least (default %s)\n"
            "  --nats URLS             NATS servers, nats://host:port[,...] (default: off)\n"
            "  --js-stream NAME        JetStream stream, created if missing (default %s)\n"
            "  --js-subject PREFIX     subjects PREFIX.<shard> (default %s)\n"
            "  --js-duplicate-window S duplicate window of a stream the relay creates (default "
            "%" PRIu32 ")\n"
            "  --inflight-max N        messages per sink not yet acknowledged (default %" PRIu32
            ", 1..%u)\n"
            "  --flush-ms MS           at stop, wait for acknowledgements (default %" PRIu32 ")\n"
            "  --idle-exit MS          stop after MS without an event (default 0: never)\n"
            "  --log-level L           debug, info, warn, error (default info)\n"
            "Resumes from the last (shard, seq) each sink holds; keeps no file of its own.\n"
            "Exit: 0 stopped and flushed, 1 failed (restart it: it resumes), 2 usage.\n",
            d.stream.pub_url, d.stream.replay_url, d.kafka_topic, d.js_stream, d.js_subject,
            d.js_duplicate_window_s, d.inflight_max, RUSH_RELAY_INFLIGHT_MAX, d.flush_ms);
}

static int fail_usage(const char *what, const char *why)
{
    fprintf(stderr, "rush-relay: %s: %s (try --help)\n", what, why);
    return EXIT_USAGE;
}

static int parse_u32(const char *name, const char *text, uint32_t *out)
{
    char why[128];
    if (rush_number_parse_u32(text, 0, UINT32_MAX, out, why, sizeof why) != 0)
        return fail_usage(name, why);
    return 0;
}

/* --stream PUB,REPLAY: split into two urls kept in `pair`. */
static int parse_stream(char *pair, struct rush_relay_config *config, const char *text)
{
    snprintf(pair, URL_PAIR_BYTES, "%s", text);
    char *comma = strchr(pair, ',');
    if (comma == NULL || comma == pair || comma[1] == '\0' || strlen(text) >= URL_PAIR_BYTES)
        return fail_usage("--stream", "give PUB_URL,REPLAY_URL");
    *comma = '\0';
    config->stream.pub_url = pair;
    config->stream.replay_url = comma + 1;
    return 0;
}

static int parse_option(int option, struct rush_relay_config *config, char *pair)
{
    enum rush_log_level level;
    switch (option) {
    case 'p':
        config->stream.pub_url = optarg;
        return 0;
    case 'r':
        config->stream.replay_url = optarg;
        return 0;
    case 's':
        return parse_stream(pair, config, optarg);
    case 'n':
        return parse_u32("--shards", optarg, &config->shards);
    case 'C':
        config->cluster_nats = optarg;
        return 0;
    case 'c':
        config->cluster_stream = optarg;
        return 0;
    case 'k':
        config->kafka_brokers = optarg;
        return 0;
    case 't':
        config->kafka_topic = optarg;
        return 0;
    case 'N':
        config->nats_urls = optarg;
        return 0;
    case 'S':
        config->js_stream = optarg;
        return 0;
    case 'J':
        config->js_subject = optarg;
        return 0;
    case 'w':
        return parse_u32("--js-duplicate-window", optarg, &config->js_duplicate_window_s);
    case 'i':
        return parse_u32("--inflight-max", optarg, &config->inflight_max);
    case 'f':
        return parse_u32("--flush-ms", optarg, &config->flush_ms);
    case 'e':
        return parse_u32("--idle-exit", optarg, &config->idle_exit_ms);
    case 'l':
        if (rush_log_level_parse(optarg, &level) != 0)
            return fail_usage("--log-level", "debug, info, warn or error");
        rush_log_set_level(level);
        return 0;
    default:
        return fail_usage("options", "unknown option");
    }
}

static int parse(int argc, char **argv, struct rush_relay_config *config, char *pair)
{
    static const struct option options[] = {
        {"pub", required_argument, NULL, 'p'},
        {"replay", required_argument, NULL, 'r'},
        {"stream", required_argument, NULL, 's'},
        {"shards", required_argument, NULL, 'n'},
        {"cluster-nats", required_argument, NULL, 'C'},
        {"cluster-stream", required_argument, NULL, 'c'},
        {"kafka", required_argument, NULL, 'k'},
        {"topic", required_argument, NULL, 't'},
        {"nats", required_argument, NULL, 'N'},
        {"js-stream", required_argument, NULL, 'S'},
        {"js-subject", required_argument, NULL, 'J'},
        {"js-duplicate-window", required_argument, NULL, 'w'},
        {"inflight-max", required_argument, NULL, 'i'},
        {"flush-ms", required_argument, NULL, 'f'},
        {"idle-exit", required_argument, NULL, 'e'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int option;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'h') {
            usage(stdout);
            exit(0);
        }
        int rc = parse_option(option, config, pair);
        if (rc != 0)
            return rc;
    }
    if (optind < argc)
        return fail_usage(argv[optind], "rush-relay takes no operand");
    char why[256];
    if (rush_relay_config_check(config, why, sizeof why) != 0)
        return fail_usage("configuration", why);
    return 0;
}

int main(int argc, char **argv)
{
    static char pair[URL_PAIR_BYTES];
    struct rush_relay_config config;
    rush_relay_config_default(&config);
    int rc = parse(argc, argv, &config, pair);
    if (rc != 0)
        return rc;
    struct sigaction action = {.sa_handler = relay_on_signal};
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rush_relay_stats stats;
    char why[512] = "";
    rc = rush_relay_run(&config, &relay_stopping, &stats, why, sizeof why);
    fprintf(stderr,
            "rush-relay: %" PRIu64 " events read in %.3f s; kafka %" PRIu64 " published, "
            "jetstream %" PRIu64 " published (%" PRIu64 " duplicates dropped, %" PRIu64
            " resent); %" PRIu64 " waits on a full sink\n",
            stats.events_read, stats.seconds, stats.kafka_published, stats.jetstream_published,
            stats.jetstream_duplicates, stats.jetstream_resends, stats.backpressure_waits);
    if (rc != 0) {
        fprintf(stderr, "rush-relay: %s: %s\n", rush_strerror(rc), why);
        return EXIT_FAILED;
    }
    return 0;
}
