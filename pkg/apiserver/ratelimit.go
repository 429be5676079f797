package apiserver

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters hands out a token bucket per key (a token id, or a client address
// for requests that fail to authenticate), created on first use. Buckets
// that have refilled are dropped now and then: a full bucket is the same as
// a new one, so dropping it forgets nothing, and the map stays as large as
// the set of recently busy keys.
type limiters struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// sweepEvery is how often full buckets are dropped, at most.
const sweepEvery = time.Minute

// newLimiters allows each key perSecond requests a second on average and
// bursts of burst. perSecond <= 0 disables limiting.
func newLimiters(perSecond float64, burst int, now func() time.Time) *limiters {
	if now == nil {
		now = time.Now
	}
	if burst < 1 {
		burst = 1
	}
	return &limiters{limit: rate.Limit(perSecond), burst: burst, now: now, buckets: map[string]*rate.Limiter{}}
}

func (l *limiters) enabled() bool { return l != nil && l.limit > 0 }

func (l *limiters) bucket(key string, t time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.Sub(l.lastSweep) >= sweepEvery {
		for k, b := range l.buckets {
			if b.TokensAt(t) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = t
	}
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b
}

// allow takes one request from key's bucket. When the bucket is empty it
// takes nothing and says how long until it holds a request again.
func (l *limiters) allow(key string) (bool, time.Duration) {
	if !l.enabled() {
		return true, 0
	}
	t := l.now()
	r := l.bucket(key, t).ReserveN(t, 1)
	if d := r.DelayFrom(t); d > 0 {
		r.CancelAt(t)
		return false, d
	}
	return true, 0
}

// retryAfter is d in whole seconds, rounded up, at least 1: what the
// Retry-After header can say.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
