// Package fanout keeps, per key (a topic), the attaches that hold it and a
// value each (a handler, a channel): one subscription at the peer serves
// them all, and goes when the last one leaves. A connector whose peer
// delivers by subscription (an MQTT or EdgeX broker, a Redis pub/sub)
// keeps one Set under its own lock: subscribe at the peer when Add says
// the key is new, unsubscribe there what Remove returns, deliver to each
// entry that Of lists. The mqtt and edgex connectors use it so.
package fanout

// Entry is one ref's value on a key.
type Entry[V any] struct {
	Ref string
	V   V
}

// Set is the refs per key. It is not safe for concurrent use: the caller's
// lock guards it. The slices that Of returns are never modified, so they
// may be read after the lock is released.
type Set[V any] struct {
	m map[string][]Entry[V]
}

// Add sets ref's value on key, replacing one it had, and reports whether
// key is new.
func (s *Set[V]) Add(key, ref string, v V) (first bool) {
	if s.m == nil {
		s.m = map[string][]Entry[V]{}
	}
	old, ok := s.m[key]
	es := make([]Entry[V], 0, len(old)+1)
	for _, e := range old {
		if e.Ref != ref {
			es = append(es, e)
		}
	}
	s.m[key] = append(es, Entry[V]{ref, v})
	return !ok
}

// Remove drops ref from keys and returns the keys that no ref holds now.
func (s *Set[V]) Remove(ref string, keys ...string) (emptied []string) {
	for _, key := range keys {
		old, ok := s.m[key]
		if !ok {
			continue
		}
		es := make([]Entry[V], 0, len(old))
		for _, e := range old {
			if e.Ref != ref {
				es = append(es, e)
			}
		}
		if len(es) == 0 {
			delete(s.m, key)
			emptied = append(emptied, key)
		} else {
			s.m[key] = es
		}
	}
	return emptied
}

// KeysOf returns the keys ref holds.
func (s *Set[V]) KeysOf(ref string) []string {
	var keys []string
	for key, es := range s.m {
		for _, e := range es {
			if e.Ref == ref {
				keys = append(keys, key)
				break
			}
		}
	}
	return keys
}

// Of returns the entries of key.
func (s *Set[V]) Of(key string) []Entry[V] { return s.m[key] }

// Keys returns every key held.
func (s *Set[V]) Keys() []string {
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	return keys
}
