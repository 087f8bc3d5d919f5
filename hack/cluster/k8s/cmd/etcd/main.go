// Command etcd is upstream etcd 3.6; `go install` cannot build it because its
// server module carries replace directives, so it is built from this module instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
