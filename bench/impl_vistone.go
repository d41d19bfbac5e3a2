package main

import (
	"fmt"

	vquic "github.com/vistone/quic"
)

// vistoneImpl is github.com/vistone/quic v1.0.0, the sharded fork of NodePass's package. Its
// managers start their own goroutines and return at once, so they are called directly.
func vistoneImpl() Impl {
	return Impl{
		Name:   nameVistone,
		Pooled: true,
		NewServer: func(s Shape, addr string) (Pool, error) {
			p := vquic.NewServerPool(s.MaxCap, "", serverTLS, addr, s.KeepAlive)
			if p == nil {
				return nil, fmt.Errorf("vistone: no server pool for %q", addr)
			}
			p.ServerManager()
			return p, nil
		},
		NewClient: func(s Shape, addr string) (Pool, error) {
			p := vquic.NewClientPool(s.MinCap, s.MaxCap, s.MinIvl, s.MaxIvl, s.KeepAlive,
				"1", "localhost", func() (string, error) { return addr, nil })
			p.ClientManager()
			return p, nil
		},
	}
}
