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
// What a lease costs is strictness: its unused admissions count until the
// process next asks Redis about the key, which gives them back (the script
// subtracts them from bucket k, which still holds every admission made in
// it). Leases follow demand to keep that small: a process asks for twice the
// rate at which it used its last lease of the key, over what is left of the
// bucket (one, a plain decision, for a key it has not seen in the last bucket
// or two), at most one lease request per key is on its way at a time
// (concurrent misses ask for themselves alone), and the script grants at
// most 1/leaseShare of the room.
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
	// unused admissions of an older lease, counted in bucket back, to give
	// back with the next request to Redis
	unused int
	back   int64
	until  time.Time
	// For the decisions made from the lease: the process clock when it was
	// asked for, Redis time and what the script reported at the grant.
	sent     time.Time
	redisNow int64
	room     int // the rule's remaining room in Redis after the grant
	reset    time.Duration
}

// ask is what a request that goes to Redis says of one rule: the demand of
// this process in admissions per bucket (1: this request alone), and the
// unused admissions of its ended lease, counted in bucket back, that it
// gives back.
type ask struct {
	demand, unused int
	back           int64
}

// take decides from the leases the rules of one request that have an
// admission left (held[i], out[i]) and says, for the others, what to ask
// Redis (asks[i]); remote counts them. A demand over 1 marks the key asking
// until settle. On nil leases, every rule goes to Redis on its own.
func (ls *leases) take(keys []string, reqs []Request, widths []int64, now time.Time, out []Decision) (held []*lease, asks []ask, remote int) {
	held = make([]*lease, len(reqs))
	asks = make([]ask, len(reqs))
	if ls == nil {
		for i := range asks {
			asks[i].demand = 1
		}
		return held, asks, len(reqs)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if now.Sub(ls.lastSweep) > time.Second || len(ls.m) >= maxLeases {
		ls.sweep(now)
	}
	for i, q := range reqs {
		asks[i].demand = 1
		e := ls.m[keys[i]]
		if e == nil || e.limit != q.Rule.Limit || e.width != widths[i] {
			remote++ // a key not seen lately, or another rule of the same name
			continue
		}
		if e.tokens > 0 && now.Before(e.until) {
			e.tokens--
			e.used++
			ls.decided++
			held[i] = e
			el := now.Sub(e.sent)
			out[i] = Decision{Rule: q.Rule.Name, Allowed: true, Limit: q.Rule.Limit, Remaining: e.room + e.tokens,
				ResetAfter: max(e.reset-el, 0), At: time.UnixMicro(e.redisNow).Add(el)}
			continue
		}
		remote++
		switch {
		case e.unused > 0:
			asks[i].back, asks[i].unused = e.back, e.unused
			e.unused = 0
		case e.tokens > 0: // the lease ended with admissions unused
			asks[i].back, asks[i].unused = e.bucket, e.tokens
			e.tokens = 0
		}
		if !e.asking && now.Before(e.forget()) {
			// Twice the rate of the last lease, over one bucket.
			last := e.until
			if now.Before(last) {
				last = now
			}
			span := max(last.Sub(e.sent), time.Microsecond)
			bucket := time.Duration(e.width) * time.Microsecond
			asks[i].demand = int(min(2*int64(e.used)*int64(bucket)/int64(span)+1, MaxLimit))
			e.asking = asks[i].demand > 1
		}
	}
	return held, asks, remote
}

// settle ends a request that went to Redis: with admitted, records the lease
// of each rule that Redis decided (granted[i] admissions counted in bucket
// buckets[i] at Redis time redisNow); otherwise gives the held admissions
// back. sent is the process clock before the request was sent.
func (ls *leases) settle(keys []string, reqs []Request, widths []int64, held []*lease, asks []ask, granted []int,
	buckets []int64, admitted bool, sent time.Time, redisNow int64, out []Decision) {
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
		if asks[i].demand > 1 && e != nil {
			e.asking = false
		}
		if !admitted {
			continue
		}
		w := widths[i]
		end := (redisNow/w + 1) * w // the end of the bucket of redisNow
		valid := time.Duration(end-redisNow) * time.Microsecond
		valid -= valid / 256
		until := sent.Add(valid)
		room := out[i].Remaining - (granted[i] - 1)
		same := e != nil && e.limit == reqs[i].Rule.Limit && e.width == w
		switch {
		case same && e.bucket == buckets[i]:
			// A concurrent grant in the same bucket adds to the lease; each
			// end ends no later than the bucket, so the later one does too.
			e.tokens += granted[i] - 1
			e.used++
			e.room = room
			if until.After(e.until) {
				e.until = until
			}
			continue
		case same && e.bucket > buckets[i]:
			// An answer that arrived after a newer lease: keep that one,
			// and give back what this grant leased, if anything.
			if granted[i] > 1 && e.unused == 0 {
				e.back, e.unused = buckets[i], granted[i]-1
			}
			continue
		case e == nil && len(ls.m) >= maxLeases:
			continue
		}
		n := &lease{limit: reqs[i].Rule.Limit, width: w, tokens: granted[i] - 1, used: 1, bucket: buckets[i],
			until: until, sent: sent, redisNow: redisNow, room: room,
			reset: out[i].ResetAfter}
		if same { // an older lease: what it left unused is given back later
			switch {
			case e.unused > 0:
				n.back, n.unused = e.back, e.unused
			case e.tokens > 0:
				n.back, n.unused = e.bucket, e.tokens
			}
		}
		ls.m[keys[i]] = n
	}
}

// forget is when the entry and the demand it records go: a bucket after the
// lease ends (a concurrent grant in the same bucket moves both).
func (e *lease) forget() time.Time { return e.until.Add(time.Duration(e.width) * time.Microsecond) }

// sweep drops the entries whose demand is forgotten; ls.mu is held.
func (ls *leases) sweep(now time.Time) {
	for k, e := range ls.m {
		if !now.Before(e.forget()) && !e.asking {
			delete(ls.m, k)
		}
	}
	if len(ls.m) >= maxLeases {
		clear(ls.m)
	}
	ls.lastSweep = now
}
