// Package nodepb holds the generated code of the node-to-node service
// (node.proto): the requests one Meridian node makes of another. Run `go
// generate ./...` after changing the .proto file; CI checks that the
// committed code is what it gives.
package nodepb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative node.proto
