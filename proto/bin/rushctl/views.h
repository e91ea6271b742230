/*
 * views.h — rushctl's operator views (views.c): `top`, a live terminal view of rushd's HTTP
 * console figures, and `report`, the end-of-event reconciliation built from the confirmed-order
 * stream. Part of the rushctl program only.
 */
#ifndef RUSHCTL_VIEWS_H
#define RUSHCTL_VIEWS_H

#define RUSHCTL_DEFAULT_HTTP "127.0.0.1:7180"
#define RUSHCTL_DEFAULT_PUB_URL "tcp://127.0.0.1:7103"
#define RUSHCTL_DEFAULT_REPLAY_URL "tcp://127.0.0.1:7104"
#define RUSHCTL_DEFAULT_NATS "nats://127.0.0.1:4222"

/* argv[0] is the command's name. Exit status: 0 done, 1 rushd's figures unusable, 2 usage or
 * rushd not reachable. */
int rushctl_top(int argc, char **argv, int timeout_ms);
int rushctl_report(int argc, char **argv, int timeout_ms);
/* `cluster`: leases, leaders and standby lag, read from JetStream (cluster_view.c). */
int rushctl_cluster(int argc, char **argv, int timeout_ms);

#endif
