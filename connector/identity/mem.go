package identity

import (
	"sync"
	"time"
)

// Mem is an in-memory Store for tests. The zero value holds nothing.
type Mem struct {
	// Now is the clock Load checks validity with; nil means time.Now.
	Now func() time.Time
	// SaveErr, when set, is returned by Save (nothing is stored);
	// SavePendingErr likewise by SavePending (a full disk fails both).
	SaveErr        error
	SavePendingErr error

	mu      sync.Mutex
	id      *Identity
	pending *Pending
	saves   int
}

// SavePending implements Store.
func (m *Mem) SavePending(p *Pending) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.SavePendingErr != nil {
		return m.SavePendingErr
	}
	m.pending = p
	return nil
}

// LoadPending implements Store.
func (m *Mem) LoadPending() (*Pending, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil {
		return nil, ErrNotFound
	}
	return m.pending, nil
}

// RemovePending implements Store.
func (m *Mem) RemovePending() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = nil
	return nil
}

// Load implements Store.
func (m *Mem) Load() (*Identity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.id == nil {
		return nil, ErrNotFound
	}
	now := time.Now()
	if m.Now != nil {
		now = m.Now()
	}
	return m.id, m.id.Check(now)
}

// Save implements Store.
func (m *Mem) Save(id *Identity) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.SaveErr != nil {
		return m.SaveErr
	}
	m.id = id
	m.saves++
	return nil
}

// Saves reports how many times Save succeeded.
func (m *Mem) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}
