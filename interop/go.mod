module github.com/quicpool/quicpool/interop

go 1.26.0

require (
	github.com/NodePassProject/quic v1.1.1
	github.com/quicpool/quicpool v0.0.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/DataDog/gostackparse v0.7.0 // indirect
	github.com/anthdm/hollywood v1.0.5 // indirect
	github.com/klauspost/cpuid/v2 v2.0.9 // indirect
	github.com/quic-go/quic-go v0.65.0 // indirect
	github.com/zeebo/xxh3 v1.0.2 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	google.golang.org/protobuf v1.32.0 // indirect
)

replace github.com/quicpool/quicpool => ../
