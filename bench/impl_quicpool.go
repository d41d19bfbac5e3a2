package main

import (
	"context"
	"time"

	"github.com/quicpool/quicpool"
)

// quicpoolImpl is the library under test, with its default options (restart policy included).
func quicpoolImpl() Impl {
	return Impl{
		Name:   nameQuicpool,
		Pooled: true,
		NewServer: func(s Shape, addr string) (Pool, error) {
			p := quicpool.NewServerPool(s.MaxCap, "", serverTLS, addr, s.KeepAlive)
			go p.ServerManager()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.WaitReady(ctx, 0); err != nil {
				p.Close()
				return nil, err
			}
			return p, nil
		},
		NewClient: func(s Shape, addr string) (Pool, error) {
			p := quicpool.NewClientPool(s.MinCap, s.MaxCap, s.MinIvl, s.MaxIvl, s.KeepAlive,
				"1", "localhost", quicpool.StaticAddr(addr))
			go p.ClientManager()
			return p, nil
		},
	}
}
