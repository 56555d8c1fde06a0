// Package transportpb holds the generated code of the raft transport's
// gRPC service (transport.proto). Run `go generate ./...` after changing
// the .proto file; CI checks that the committed code is what it gives.
package transportpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative transport.proto
