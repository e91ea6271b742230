/*
 * kafka_mock — librdkafka's mock cluster (rdkafka_mock.h, shipped in librdkafka-dev) as a process
 * of its own, for the relay test: the relay and kcat reach it over loopback like a real cluster.
 *
 * Usage: kafka-mock TOPIC PARTITIONS
 * Creates a one-broker mock cluster with TOPIC of PARTITIONS partitions, prints its bootstrap
 * servers ("127.0.0.1:PORT") as one line on stdout, then serves until a signal ends it (SIGTERM,
 * SIGINT, SIGKILL: their default action), or its parent dies (PR_SET_PDEATHSIG: it never
 * outlives the test). It does not destroy the cluster on the way out: in librdkafka 2.0.2
 * rd_kafka_mock_cluster_destroy() can wait forever once clients have come and gone. Exit 1 when
 * the cluster cannot be made, 2 on usage.
 *
 * The cluster lives in this process's memory: killing it loses every message, as intended for a
 * test fixture. Single-threaded here; the mock brokers run on librdkafka's own threads.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MOCK_PARTITIONS_MAX 256

int main(int argc, char **argv)
{
    if (argc != 3 || atoi(argv[2]) < 1 || atoi(argv[2]) > MOCK_PARTITIONS_MAX) {
        fprintf(stderr, "usage: kafka-mock TOPIC PARTITIONS (1..%d)\n", MOCK_PARTITIONS_MAX);
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why); /* errors only: no bootstrap */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (rk == NULL) {
        fprintf(stderr, "kafka-mock: %s\n", why);
        return 1;
    }
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, 1);
    if (cluster == NULL || rd_kafka_mock_topic_create(cluster, argv[1], atoi(argv[2]), 1) !=
                               RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka-mock: cannot make the mock cluster or topic %s\n", argv[1]);
        return 1;
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    fflush(stdout);
    for (;;)
        pause(); /* ends by a signal's default action; the parent's death sends SIGTERM */
}
