package etcd

// Crash stops s as a killed process would: the lease is neither kept
// alive nor revoked.
func (s *Store) Crash() {
	s.cancel()
	s.wg.Wait()
	s.cli.Close()
}

// Grants returns how many leases were granted with the refs published.
func (s *Store) Grants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants
}
