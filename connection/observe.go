package connection

import (
	"sync/atomic"
	"time"
)

// Observer is told what a Manager does, for metrics (see package
// connection/metrics). Its methods are called on the Manager's goroutines:
// they must be quick, must not block and must not call the Manager.
type Observer interface {
	// Dialed reports one dial of the connection id; err is nil if it
	// succeeded.
	Dialed(id, typ string, err error)
	// StoreCalled reports one call of the store: op is create, update,
	// delete or list.
	StoreCalled(op string, took time.Duration, err error)
	// Checked reports one connectivity check of a type, as a source or a
	// sink (role), and its result: ok or the reason it failed.
	Checked(typ, role string, took time.Duration, result string)
}

// observers is the Manager's list of Observers, copied on write.
type observers struct {
	list     atomic.Pointer[[]Observer]
	inFlight atomic.Int64
}

// Observe adds o to the Observers of m, from now on.
func (m *Manager) Observe(o Observer) {
	for {
		old := m.obs.list.Load()
		var next []Observer
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, o)
		if m.obs.list.CompareAndSwap(old, &next) {
			return
		}
	}
}

func (o *observers) each(f func(Observer)) {
	if l := o.list.Load(); l != nil {
		for _, ob := range *l {
			f(ob)
		}
	}
}

// CheckStarted counts a connectivity check in flight until the returned
// func reports its result (ok or the failure's reason) to the Observers.
// The HTTP handler calls it for every check it runs.
func (m *Manager) CheckStarted(typ, role string) (done func(took time.Duration, result string)) {
	m.obs.inFlight.Add(1)
	var once atomic.Bool
	return func(took time.Duration, result string) {
		if once.Swap(true) {
			return
		}
		m.obs.inFlight.Add(-1)
		m.obs.each(func(o Observer) { o.Checked(typ, role, took, result) })
	}
}

// ChecksInFlight returns how many checks started with CheckStarted have
// not ended.
func (m *Manager) ChecksInFlight() int { return int(m.obs.inFlight.Load()) }

// timed runs a store call, guarded against a panic, and reports it.
func (m *Manager) timed(op string, f func() error) error {
	start := time.Now()
	err := guard(f)
	took := time.Since(start)
	m.obs.each(func(o Observer) { o.StoreCalled(op, took, err) })
	return err
}
