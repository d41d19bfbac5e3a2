module github.com/quicpool/quicpool/bench

go 1.26.0

replace github.com/quicpool/quicpool => ../

require (
	github.com/NodePassProject/quic v1.1.1
	github.com/google/pprof v0.0.0-20261016150608-1facf8f91b50
	github.com/quic-go/quic-go v0.65.0
	github.com/quicpool/quicpool v0.0.0
	github.com/vistone/quic v1.0.0
)

require (
	github.com/DataDog/gostackparse v0.7.0 // indirect
	github.com/anthdm/hollywood v1.0.5 // indirect
	github.com/klauspost/cpuid/v2 v2.0.9 // indirect
	github.com/zeebo/xxh3 v1.0.2 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	google.golang.org/protobuf v1.32.0 // indirect
)
