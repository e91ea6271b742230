/*
 * cluster.h — rush beyond one machine: each shard's log replicated on NATS JetStream, leases that
 * say which node leads which shard, standbys that follow and take over (ARCHITECTURE.md
 * "Cluster").
 *
 * What and why. With `durability = replicated` and a [cluster] section, rushd creates one cluster
 * beside its engine. The cluster gives the engine its replica hooks (every batch a leading shard
 * appends locally is shipped to the stream subject `<stream>.shard.<n>` with the expected last
 * sequence of that subject, so JetStream itself refuses a writer that is not current), keeps a
 * lease per shard in the JetStream key-value bucket `<stream>_leases` (compare-and-set on the
 * revision, the bucket's TTL = lease_ms), feeds the shards it does not lead from their subjects,
 * and promotes and fences the engine's shards (rush/engine.h "Cluster roles").
 *
 * Workload: a few shards per node (1..64), leases renewed every lease_ms / 4, one JetStream
 * message per replicated group of WAL batches (bounded by RUSH_CLUSTER_MESSAGE_BYTES_MAX).
 *
 * Threads: one replicator per shard (ships the shard's batches, synchronous publishes in order);
 * one lease thread (leases, promotion, hand-over, the node's status key); libnats' own threads
 * (connection, and the delivery thread of each follower subscription). The engine's shard
 * threads only copy their batches into the replicator's queue.
 */
#ifndef RUSH_CLUSTER_H
#define RUSH_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "campaign/campaign.h"
#include "rush/engine.h"

/* Replicated messages stay under nats-server's default max_payload (1 MiB). */
#define RUSH_CLUSTER_MESSAGE_BYTES_MAX (900u * 1024)
/* A shard's event buffer in replicated mode: one WAL batch always fits one message. */
#define RUSH_CLUSTER_EVENTS_BUFFER_MAX 8192

struct rush_cluster;

/*
 * Connects to the NATS servers, creates (or finds) the stream and the lease bucket. Nothing runs
 * yet. 0, or < 0 with why.
 */
RUSH_MUST_USE int rush_cluster_create(const struct rush_campaign_cluster *settings,
                                      uint32_t shard_count, struct rush_cluster **out, char *why,
                                      size_t why_size);
/* The hooks to put in the engine's config (config.replica) before rush_engine_create. */
void rush_cluster_replica(struct rush_cluster *cluster, struct rush_engine_replica *replica);
/*
 * Starts following, leasing and replicating for `engine` (created with those hooks and started).
 * Then waits up to wait_ms until every shard has a leader somewhere. 0, or < 0 with why.
 */
RUSH_MUST_USE int rush_cluster_start(struct rush_cluster *cluster, struct rush_engine *engine,
                                     uint32_t wait_ms, char *why, size_t why_size);
/* Whether this node leads the shard now. Any thread. */
bool rush_cluster_leads(const struct rush_cluster *cluster, uint32_t shard_index);
/*
 * A planned hand-over: this node, leading the shard, stops taking its requests, waits until what
 * it holds is replicated and answered, then offers the lease to node `target` (an index of
 * [cluster] nodes), which takes it at its next lease round. Returns at once; 0, or RUSH_ECONFIG
 * (not the leader, or a bad target) with why.
 */
RUSH_MUST_USE int rush_cluster_handover(struct rush_cluster *cluster, uint32_t shard_index,
                                        uint32_t target, char *why, size_t why_size);
/*
 * Before the engine is destroyed: fences the shards this node leads, releases their leases once
 * they answered what they held (bounded by lease_ms), stops the lease thread and the followers.
 * The replicators keep shipping until rush_cluster_destroy. Safe on NULL.
 */
void rush_cluster_stop(struct rush_cluster *cluster);
/* After the engine is destroyed: stops the replicators, closes the connection. Safe on NULL. */
void rush_cluster_destroy(struct rush_cluster *cluster);

#endif
