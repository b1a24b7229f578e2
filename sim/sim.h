/*
 * sim.h — the tick's game logic: pure C, deterministic, no I/O.
 *
 * So far: the CPU rules players see (Screeps' limit, bucket and tickLimit). The world
 * (rooms, objects, intents) and the game-module interface come with the world issue.
 */
#ifndef ISOWORLD_SIM_H
#define ISOWORLD_SIM_H

#include <stdbool.h>
#include <stdint.h>

#define SIM_BUCKET_MAX 10000    /* ms of unused CPU a player can save up */
#define SIM_TICK_LIMIT_MAX 500  /* ms: no single tick may use more */
#define SIM_BUCKET_START SIM_BUCKET_MAX

/* One player's CPU account, in milliseconds. A plain value. */
typedef struct sim_cpu {
  int32_t limit;   /* Game.cpu.limit */
  int64_t bucket;  /* Game.cpu.bucket */
} sim_cpu;

/* Game.cpu.tickLimit: min(500, bucket + limit), never below 0. */
double sim_cpu_tick_limit(const sim_cpu *c);

/* A player whose bucket is below zero at tick start is skipped (Screeps: "CPU bucket
 * is empty"); the skipped tick still earns `limit`. */
bool sim_cpu_must_skip(const sim_cpu *c);

/* After a run (or a skip, with used_ms = 0): the bucket gains limit - used, capped at
 * SIM_BUCKET_MAX. It can go negative when a run overran its budget inside a builtin
 * that ignored termination: the overrun is billed. */
void sim_cpu_charge(sim_cpu *c, double used_ms);

#endif
