package etcd

// Crash stops s as a killed process would: the lease is neither kept
// alive nor revoked.
func (s *Store) Crash() {
	s.cancel()
	s.wg.Wait()
	s.cli.Close()
}
