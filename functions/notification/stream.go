package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/events"
)

// StreamSink is where Stream writes: the HTTP function frames each call as
// Server-Sent Events. An error ends the stream.
type StreamSink interface {
	// Ready is called once the stream is subscribed and has replayed what
	// the client missed: from then on nothing committed is lost.
	Ready() error
	// Send writes one notification, in seq order.
	Send(n Notification) error
	// Heartbeat writes a keep-alive.
	Heartbeat() error
}

// catchUpBatch is how many notifications one replay query reads.
const catchUpBatch = 200

// Stream sends userID's notifications to sink until ctx is done or sink
// fails, and returns nil when ctx ended it. With lastEventID (a seq the
// client saw, from the Last-Event-ID header) it first replays every later
// notification from the database; without, it sends only what comes after
// the call. Live notifications arrive through Redis pub/sub; a gap in the
// sequence, a pub/sub reconnect, and every heartbeat make it read the
// database, so nothing committed is lost even when a publish was. At most
// Config.StreamsPerUser streams of one user are open at once across every
// instance (apierr RateLimited beyond); without Redis the stream is apierr
// Unavailable. A malformed lastEventID is an apierr Invalid.
func (s *Service) Stream(ctx context.Context, userID, lastEventID string, sink StreamSink) error {
	var after int64 = -1
	if lastEventID != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(lastEventID), 10, 64)
		if err != nil || n < 0 {
			return apierr.New(apierr.Invalid, "Last-Event-ID: must be the id of an event of this stream")
		}
		after = n
	}
	release, err := s.acquireStream(ctx, userID)
	if err != nil {
		return err
	}
	defer release()
	sub, err := s.streamHub().subscribe(ctx, userID)
	if err != nil {
		return apierr.Wrap(apierr.Unavailable, err, "the live stream is unavailable, try again")
	}
	defer sub.close()
	if after < 0 {
		if err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT last_seq FROM recipients WHERE user_id = $1), 0)`,
			userID).Scan(&after); err != nil {
			return fmt.Errorf("stream of user %s: %w", userID, err)
		}
	}
	catchUp := func() error {
		for {
			rows, err := s.pool.Query(ctx, `SELECT `+notificationColumns+` FROM notifications
				WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, userID, after, catchUpBatch)
			if err != nil {
				return fmt.Errorf("replay notifications of user %s after %d: %w", userID, after, err)
			}
			batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) { return scanNotification(r) })
			if err != nil {
				return fmt.Errorf("replay notifications of user %s after %d: %w", userID, after, err)
			}
			for _, n := range batch {
				if err := sink.Send(n); err != nil {
					return err
				}
				after = n.Seq
			}
			if len(batch) < catchUpBatch {
				return nil
			}
		}
	}
	if err := catchUp(); err != nil {
		return ignoreEnd(ctx, err)
	}
	if err := sink.Ready(); err != nil {
		return ignoreEnd(ctx, err)
	}
	beat := time.NewTicker(s.cfg.StreamHeartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case n := <-sub.ch:
			switch {
			case n.Seq <= after:
			case n.Seq == after+1:
				if err = sink.Send(n); err == nil {
					after = n.Seq
				}
			default:
				err = catchUp()
			}
		case <-sub.lost:
			err = catchUp()
		case <-beat.C:
			if err = s.refreshStream(ctx, userID); err == nil {
				if err = catchUp(); err == nil {
					err = sink.Heartbeat()
				}
			}
		}
		if err != nil {
			return ignoreEnd(ctx, err)
		}
	}
}

// ignoreEnd turns an error caused by the client going away into nil.
func ignoreEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// userChannel is the pub/sub channel of userID's live notifications.
func (s *Service) userChannel(userID string) string {
	return s.cfg.RedisPrefix + "notification:user:" + userID
}

// publish sends n to userID's live streams on every instance.
func (s *Service) publish(ctx context.Context, userID string, n Notification) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return s.rdb.Publish(ctx, s.userChannel(userID), b).Err()
}

// acquireStream takes one of userID's stream slots: a member of a sorted
// set scored by its expiry, refreshed at every heartbeat, so a slot of an
// instance that died frees itself.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`)

func (s *Service) slotsKey(userID string) string {
	return s.cfg.RedisPrefix + "notification:streams:" + userID
}

func (s *Service) slotTTL() time.Duration { return 3 * s.cfg.StreamHeartbeat }

func (s *Service) acquireStream(ctx context.Context, userID string) (release func(), err error) {
	member := events.NewID()
	now := time.Now()
	ok, err := acquireScript.Run(ctx, s.rdb, []string{s.slotsKey(userID)},
		now.UnixMilli(), s.cfg.StreamsPerUser, now.Add(s.slotTTL()).UnixMilli(), member, s.slotTTL().Milliseconds()).Int()
	if err != nil {
		return nil, apierr.Wrap(apierr.Unavailable, err, "the live stream is unavailable, try again")
	}
	if ok == 0 {
		return nil, apierr.New(apierr.RateLimited, "at most %d notification streams may be open at once", s.cfg.StreamsPerUser)
	}
	s.slots.Store(member, userID)
	return func() {
		s.slots.Delete(member)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := s.rdb.ZRem(ctx, s.slotsKey(userID), member).Err(); err != nil {
			s.log.Warn("stream slot not released; it expires on its own", "user_id", userID, "err", err)
		}
	}, nil
}

// refreshStream pushes the expiry of userID's slots held by this process.
func (s *Service) refreshStream(ctx context.Context, userID string) error {
	exp := float64(time.Now().Add(s.slotTTL()).UnixMilli())
	var members []redis.Z
	s.slots.Range(func(k, v any) bool {
		if v.(string) == userID {
			members = append(members, redis.Z{Score: exp, Member: k.(string)})
		}
		return true
	})
	if len(members) == 0 {
		return nil
	}
	if err := s.rdb.ZAddXX(ctx, s.slotsKey(userID), members...).Err(); err != nil && ctx.Err() == nil {
		s.log.Warn("stream slot not refreshed", "user_id", userID, "err", err)
	}
	return nil
}

// hub shares one Redis pub/sub connection among every stream of the
// process, subscribed to the channels of the users with an open stream.
type hub struct {
	rdb *redis.Client
	log interface {
		Warn(msg string, args ...any)
	}
	channelOf func(userID string) string

	mu        sync.Mutex
	ps        *redis.PubSub
	subs      map[string]map[*subscription]struct{} // by channel
	confirmed map[string]bool
	waiting   map[string][]chan struct{}
	done      chan struct{}
}

type subscription struct {
	h       *hub
	channel string
	ch      chan Notification
	lost    chan struct{} // signalled when messages may have been missed
}

func (s *Service) streamHub() *hub {
	s.hubMu.Lock()
	defer s.hubMu.Unlock()
	if s.hub == nil {
		s.hub = &hub{rdb: s.rdb, log: s.log, channelOf: s.userChannel,
			subs: map[string]map[*subscription]struct{}{}, confirmed: map[string]bool{},
			waiting: map[string][]chan struct{}{}, done: make(chan struct{})}
	}
	return s.hub
}

// confirmWait bounds the wait for Redis to confirm a subscription; after
// it the stream goes on (its heartbeats catch up from the database).
const confirmWait = 5 * time.Second

func (h *hub) subscribe(ctx context.Context, userID string) (*subscription, error) {
	channel := h.channelOf(userID)
	sub := &subscription{h: h, channel: channel, ch: make(chan Notification, 64), lost: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.ps == nil {
		h.ps = h.rdb.Subscribe(context.Background())
		go h.run(h.ps)
	}
	set, ok := h.subs[channel]
	if !ok {
		set = map[*subscription]struct{}{}
		h.subs[channel] = set
		if err := h.ps.Subscribe(ctx, channel); err != nil {
			delete(h.subs, channel)
			h.mu.Unlock()
			return nil, fmt.Errorf("subscribe %s: %w", channel, err)
		}
	}
	set[sub] = struct{}{}
	var wait chan struct{}
	if !h.confirmed[channel] {
		wait = make(chan struct{})
		h.waiting[channel] = append(h.waiting[channel], wait)
	}
	h.mu.Unlock()
	if wait != nil {
		t := time.NewTimer(confirmWait)
		defer t.Stop()
		select {
		case <-wait:
		case <-t.C:
			h.log.Warn("redis did not confirm a stream subscription in time", "channel", channel)
		case <-ctx.Done():
			sub.close()
			return nil, ctx.Err()
		}
	}
	return sub, nil
}

func (sub *subscription) close() {
	h := sub.h
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[sub.channel]
	delete(set, sub)
	if len(set) == 0 {
		delete(h.subs, sub.channel)
		delete(h.confirmed, sub.channel)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := h.ps.Unsubscribe(ctx, sub.channel); err != nil {
			h.log.Warn("unsubscribe a stream channel", "channel", sub.channel, "err", err)
		}
	}
}

func (h *hub) run(ps *redis.PubSub) {
	for m := range ps.ChannelWithSubscriptions(redis.WithChannelSize(1024)) {
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			h.mu.Lock()
			if _, ok := h.subs[m.Channel]; ok {
				h.confirmed[m.Channel] = true
			}
			for _, w := range h.waiting[m.Channel] {
				close(w)
			}
			delete(h.waiting, m.Channel)
			// A (re)subscription may follow a lost connection: every
			// stream of the channel checks the database.
			for sub := range h.subs[m.Channel] {
				sub.signalLost()
			}
			h.mu.Unlock()
		case *redis.Message:
			var n Notification
			if err := json.Unmarshal([]byte(m.Payload), &n); err != nil {
				h.log.Warn("unreadable live notification dropped", "channel", m.Channel, "err", err)
				continue
			}
			h.mu.Lock()
			for sub := range h.subs[m.Channel] {
				select {
				case sub.ch <- n:
				default:
					sub.signalLost() // the stream is behind: it reads the database
				}
			}
			h.mu.Unlock()
		}
	}
	close(h.done)
}

func (sub *subscription) signalLost() {
	select {
	case sub.lost <- struct{}{}:
	default:
	}
}

// Close releases the process's pub/sub connection. Streams still open end.
func (s *Service) Close() error {
	s.hubMu.Lock()
	defer s.hubMu.Unlock()
	if s.hub == nil {
		return nil
	}
	s.hub.mu.Lock()
	ps := s.hub.ps
	s.hub.mu.Unlock()
	if ps == nil {
		return nil
	}
	err := ps.Close()
	<-s.hub.done
	if errors.Is(err, redis.ErrClosed) {
		return nil
	}
	return err
}
