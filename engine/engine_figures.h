/*
 * engine_figures.h — what the engine counts for the operators (engine/ops/: /metrics, the
 * dashboard), per shard, readable from any thread without stopping a shard.
 *
 * Cost on the decision path: one CLOCK_MONOTONIC read and one histogram record per pass (a pass
 * decides up to 64 work items, thousands of requests at full rate), and a copy of the WAL's
 * counters when a pass released work; no lock, no locked instruction (each shard is the only
 * writer of its figures: proto/base/latency.h).
 */
#ifndef RUSH_ENGINE_FIGURES_H
#define RUSH_ENGINE_FIGURES_H

#include <stdint.h>

#include "base/latency.h"
#include "rush/engine.h"
#include "shard/shard.h"

struct rush_engine_shard_figures {
    struct rush_latency_figures decide_latency; /* one record per pass: decide + log append */
    struct rush_latency_figures sync_latency;   /* one record per completed fdatasync seen */
    uint64_t wal_bytes_written;
    uint64_t wal_syncs;
    uint64_t durable_lsn;
    uint32_t inbound_depth;  /* work items queued for the shard */
    uint32_t outbound_depth; /* decided items not yet collected by the front end */
    uint32_t ring_slots;
    struct rush_shard_occupancy tables; /* as of the shard's last pass */
};

/* Any thread; approximate while the shard is busy. */
void rush_engine_shard_figures(const struct rush_engine *engine, uint32_t shard_index,
                               struct rush_engine_shard_figures *out);

#endif
