package station

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"time"
)

// Sessions live in the station's memory: a restart logs everyone out,
// which costs a login and never leaves a token valid on disk.
const (
	cookieName  = "allscreen_session"
	idleTimeout = 30 * time.Minute
	maxLifetime = 12 * time.Hour
)

type session struct {
	userID  int64
	csrf    string
	created time.Time
	seen    time.Time
}

type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*session
}

func newToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(userID int64) (token string, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// Drop expired sessions while here: the map never grows without bound.
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
	token = newToken()
	sess = &session{userID: userID, csrf: newToken(), created: now, seen: now}
	s.m[token] = sess
	return token, sess
}

func (s *sessions) expired(v *session, now time.Time) bool {
	return now.Sub(v.seen) > idleTimeout || now.Sub(v.created) > maxLifetime
}

// get returns the live session of a token and marks it seen.
func (s *sessions) get(token string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[token]
	if !ok {
		return session{}, false
	}
	now := s.now()
	if s.expired(v, now) {
		delete(s.m, token)
		return session{}, false
	}
	v.seen = now
	return *v, true
}

func (s *sessions) drop(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, token)
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// throttle slows guessing: after freeAttempts failures for one key (a name,
// an address, a signer's PIN), each further attempt waits twice as long as
// the one before, from baseDelay up to maxDelay. A success clears the key.
type throttle struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*strikes
}

type strikes struct {
	n    int
	last time.Time
}

const (
	freeAttempts = 5
	baseDelay    = 30 * time.Second
	maxDelay     = 15 * time.Minute
)

// wait is how long key must still wait before its next attempt (0: go).
func (t *throttle) wait(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.m[strings.ToLower(key)]
	if !ok || st.n < freeAttempts {
		return 0
	}
	d := baseDelay << min(st.n-freeAttempts, 5)
	d = min(d, maxDelay)
	if left := st.last.Add(d).Sub(t.now()); left > 0 {
		return left
	}
	return 0
}

func (t *throttle) fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := strings.ToLower(key)
	st, ok := t.m[k]
	if !ok {
		if len(t.m) > 10000 { // a flood of made-up names: forget the old ones
			clear(t.m)
		}
		st = &strikes{}
		t.m[k] = st
	}
	st.n++
	st.last = t.now()
}

func (t *throttle) clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, strings.ToLower(key))
}
