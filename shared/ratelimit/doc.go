// Package ratelimit limits requests per IP, per user and per endpoint with a
// sliding window kept in Redis, decided in one round trip (one EVALSHA) or,
// for a busy key far from its limit, in process memory from a lease of
// admissions Redis counted beforehand; it falls back to the same algorithm in
// process memory when Redis is unreachable.
//
// # Algorithm: a ring of sub-window counters
//
// A rule allows L requests per window W. The window is cut into N buckets of
// width b = ceil(W/N) (so N·b ≥ W); bucket j covers Redis server time
// [j·b, (j+1)·b). A key's state is the index k of its newest bucket and the
// counts of the N+1 buckets k−N … k, packed big-endian into one Redis string
// (6 bytes of index + 2 bytes per count: 28 bytes for N = 10), so a limited
// key costs about 100 bytes of Redis memory whatever L is. Keys expire after
// (N+1)·b ≈ W + W/N of idleness, when every count they hold has left the window.
//
// A decision at server time t (bucket k = floor(t/b)) sums the N+1 buckets
// k−N … k and admits iff the sum is below L; an admission increments bucket
// k. A check of several rules (the IP, user and endpoint rules of one request)
// is one script call: the request is admitted only if every rule has room,
// and only then is any counter incremented. Calls made while others are on
// their way to Redis are decided together by one script call, one after
// another as if each were its own call (so the bound below holds per call):
// concurrent requests share round trips and script runs instead of paying
// one each.
//
// # Bound: no rolling window of length W ever admits more than L
//
// Take any window (s−W, s] and let a* be the admission in it that Redis
// executed last, at time t* ≤ s in bucket k*. Bucket indices never decrease in
// execution order (the script clamps k to the stored newest index). Every
// other admission a in the window has t_a > s−W ≥ t*−W, and because N·b ≥ W,
// floor(t_a/b) ≥ floor((t*−W)/b) ≥ k*−N: it was counted in one of the buckets
// k*−N … k* that the decision for a* summed. That sum was below L, so the
// window holds at most L admissions. The bound is exact with respect to Redis
// server time; the price is that the oldest bucket counts whole although only
// part of it overlaps the window, so a client can be refused while as few as
// L minus one bucket's share of requests fall in the last W (never fewer than
// L admissions in any W + b).
//
// Two algorithms that look cheaper were rejected: a fixed window admits 2·L
// across a window edge, and the two-counter estimate (previous window weighted
// by its remaining overlap) can be driven above L by a client that fills the
// previous window at its very end; a sorted-set log is exact but costs about
// 24 bytes per admitted request.
//
// Clocks: all processes use Redis TIME, so they agree. If the Redis clock steps
// back by at most N+1 buckets the script keeps counting in the newest bucket
// (stricter, never looser); a larger jump, or a rule whose window changed so
// that the stored ring no longer fits, starts the key afresh.
//
// # Leases: most decisions of a busy key without a round trip
//
// An admission may be counted before it is made: when a key is busy in a
// process, the script counts a lease of g admissions in the current bucket k
// at once (only if the rule has room for all g, and g is at most 1/8 of that
// room, so keys with less than 16 of room are decided request by request),
// and the process admits the g−1 after the request that asked for it by
// itself, until bucket k ends. In the bound above a lease is g admissions of
// bucket k decided at once, so the bound holds unchanged, however many
// processes share the key: no rolling window of length W admits more than L,
// no excess allowed for leasing. The process learns the end of bucket k in
// Redis time and measures it on its monotonic clock from before it sent the
// request, so a lease ends early rather than late (less 1/256 for a process
// clock that runs faster than Redis's). Reported times (Decision.At) of such
// admissions are the Redis time of the grant plus the time since.
//
// The price is strictness: a lease's unused admissions count while it lasts,
// and after it until the process next asks Redis about the key, which gives
// them back (the script subtracts them from bucket k, which then still holds
// every admission made in it). So a key can be refused while fewer than L
// were admitted, by what the processes hold in their current leases plus the
// unused part of leases that ended on keys a process has not asked about
// since (for W + W/N at most). A lease is sized to demand: twice the rate at
// which the process used its last lease of the key, over what is left of the
// bucket (a key it has not seen for a bucket or two starts again from a plain
// decision), never more than 1/8 of the room; a process has at most one lease
// request of a key on its way at a time, and a key near its limit gets none.
//
// # Failure
//
// Resilient puts a timeout on every Redis call (long enough that a slow answer
// is waited for: a call that timed out may have been counted, and deciding it
// again in process memory would admit it twice) and, when Redis fails, logs
// the transition once, sets cloudphone_degraded{component="ratelimit"} and
// probes Redis again after a backoff. Meanwhile each rule decides as it is
// declared: a fail-closed rule (login and registration by default) refuses
// with 503 unavailable, so it never admits more than its limit; a fail-open
// rule is decided by a per-process Local limiter (same algorithm), so the
// platform keeps answering and each process still enforces the limit.
package ratelimit
