package ratelimit

import (
	"sync"
	"time"
)

// leaseShare bounds a lease: it takes at most 1/leaseShare of the room a key
// has left in Redis when it is granted, so that the processes sharing a key
// near its limit go back to Redis for every request (a key with less than
// 2·leaseShare of room gets no lease at all) and a lease never takes a large
// part of what other processes could still admit.
const leaseShare = 8

// maxLeases bounds the keys a process remembers leases and demand for; past
// it, it forgets them all (which only costs round trips).
const maxLeases = 1 << 16

// leases are the admissions this process may decide without Redis.
//
// When a request reaches Redis, the script may count more than that request
// against a rule: a lease of g admissions, counted in the current bucket k
// when the rule has room for them all. The process then admits up to g−1
// further requests of that key itself, until bucket k ends. Each of those
// admissions is one the script counted, in the bucket its time falls in, by
// a decision that found room for it: to the bound of the package doc, a lease
// is g admissions made at once, and no rolling window admits more than the
// limit whatever the number of processes. The end of bucket k is known in
// Redis time; the process measures it on its monotonic clock from before it
// sent the request (so Redis's decision came later, and the lease ends
// early rather than late), less 1/256 for clocks running at different rates.
//
// What a lease costs is strictness: its unused admissions stay counted until
// bucket k leaves the window, so a key can be refused while fewer than its
// limit were actually admitted, by at most the unused part of the leases
// granted in the window. Leases follow demand to keep that small: a process
// asks for twice the admissions it made from its last lease of the key (one,
// a plain decision, for a key it has not seen in the last bucket or two), at
// most one lease request per key is on its way at a time (concurrent misses
// ask for themselves alone), and the script grants at most 1/leaseShare of
// the room.
type leases struct {
	mu        sync.Mutex
	m         map[string]*lease
	lastSweep time.Time
	decided   int64 // rules decided from a lease, for tests; under mu
}

// lease is one key's lease in this process, and the demand it saw.
type lease struct {
	limit  int
	width  int64 // bucket width, µs
	tokens int   // admissions left to decide here
	used   int   // admissions decided with it, the request that asked for it included
	asking bool  // a request for the next lease is on its way
	bucket int64 // Redis bucket index the lease is counted in
	until  time.Time
	forget time.Time // after it, the entry and the demand it records go
	// For the decisions made from the lease: the process clock when it was
	// asked for, Redis time and what the script reported at the grant.
	sent     time.Time
	redisNow int64
	room     int // the rule's remaining room in Redis after the grant
	reset    time.Duration
}

// take decides from the leases the rules of one request that have an
// admission left (held[i], out[i]) and says, for the others, how many
// admissions to ask Redis for (wants[i]); remote counts them. A request of
// more than one admission marks the key asking until settle.
func (ls *leases) take(keys []string, reqs []Request, widths []int64, now time.Time, out []Decision) (held []*lease, wants []int, remote int) {
	held = make([]*lease, len(reqs))
	wants = make([]int, len(reqs))
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if now.Sub(ls.lastSweep) > time.Second || len(ls.m) >= maxLeases {
		ls.sweep(now)
	}
	for i, q := range reqs {
		e := ls.m[keys[i]]
		if e != nil && (e.limit != q.Rule.Limit || e.width != widths[i] || !now.Before(e.forget)) {
			e = nil // another rule of the same name, or forgotten demand
		}
		switch {
		case e != nil && e.tokens > 0 && now.Before(e.until):
			e.tokens--
			e.used++
			ls.decided++
			held[i] = e
			el := now.Sub(e.sent)
			out[i] = Decision{Rule: q.Rule.Name, Allowed: true, Limit: q.Rule.Limit, Remaining: e.room + e.tokens,
				ResetAfter: max(e.reset-el, 0), At: time.UnixMicro(e.redisNow).Add(el)}
		case e != nil && !e.asking:
			e.asking = true
			wants[i] = min(2*e.used, MaxLimit)
			remote++
		default:
			wants[i] = 1
			remote++
		}
	}
	return held, wants, remote
}

// settle ends a request that went to Redis: with admitted, records the lease
// of each rule that Redis decided (granted[i] admissions counted for it at
// Redis time redisNow); otherwise gives the held admissions back. sent is
// the process clock before the request was sent.
func (ls *leases) settle(keys []string, reqs []Request, widths []int64, held []*lease, wants, granted []int, admitted bool,
	sent time.Time, redisNow int64, out []Decision) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, e := range held {
		if e != nil && !admitted {
			e.tokens++
			e.used--
			ls.decided--
		}
	}
	for i := range keys {
		if held[i] != nil {
			continue
		}
		e := ls.m[keys[i]]
		if wants[i] > 1 && e != nil {
			e.asking = false
		}
		if !admitted {
			continue
		}
		w := widths[i]
		end := (redisNow/w + 1) * w // the end of the bucket of the grant
		valid := time.Duration(end-redisNow) * time.Microsecond
		valid -= valid / 256
		until := sent.Add(valid)
		room := out[i].Remaining - (granted[i] - 1)
		if e != nil && e.limit == reqs[i].Rule.Limit && e.width == w && e.bucket == redisNow/w && sent.Before(e.until) {
			// Same bucket: a concurrent grant adds to the lease.
			e.tokens += granted[i] - 1
			e.used++
			e.room = room
			continue
		}
		if len(ls.m) >= maxLeases {
			continue
		}
		ls.m[keys[i]] = &lease{limit: reqs[i].Rule.Limit, width: w, tokens: granted[i] - 1, used: 1, bucket: redisNow / w, until: until,
			forget: until.Add(time.Duration(w) * time.Microsecond), sent: sent, redisNow: redisNow, room: room,
			reset: out[i].ResetAfter}
	}
}

// sweep drops the entries whose demand is forgotten; ls.mu is held.
func (ls *leases) sweep(now time.Time) {
	for k, e := range ls.m {
		if !now.Before(e.forget) && !e.asking {
			delete(ls.m, k)
		}
	}
	if len(ls.m) >= maxLeases {
		clear(ls.m)
	}
	ls.lastSweep = now
}
