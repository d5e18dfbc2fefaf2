package fanout

import (
	"slices"
	"testing"
)

func TestSet(t *testing.T) {
	var s Set[int]
	if !s.Add("a", "r1", 1) || s.Add("a", "r2", 2) || !s.Add("b", "r1", 3) {
		t.Fatal("first-ness wrong")
	}
	held := s.Of("a")
	s.Add("a", "r1", 9) // replaces r1's value, leaves what was read intact
	if len(held) != 2 || held[0].V != 1 {
		t.Errorf("a slice read before a change was modified: %v", held)
	}
	if got := s.Of("a"); len(got) != 2 || got[1] != (Entry[int]{"r1", 9}) {
		t.Errorf("Of(a) = %v", got)
	}
	keys := s.KeysOf("r1")
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "b"}) {
		t.Errorf("KeysOf(r1) = %v", keys)
	}
	if gone := s.Remove("r1", "a", "b", "c"); !slices.Equal(gone, []string{"b"}) {
		t.Errorf("Remove(r1) emptied %v, want b", gone)
	}
	if gone := s.Remove("r2", "a"); !slices.Equal(gone, []string{"a"}) || len(s.Keys()) != 0 {
		t.Errorf("Remove(r2) emptied %v, keys left %v", gone, s.Keys())
	}
}
