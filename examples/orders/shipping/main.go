// Command shipping is the shipping service of the worked example (see
// examples/orders/README.md).
package main

import (
	"os"

	"github.com/spoolmq/spool/examples/orders/shop"
)

func main() { os.Exit(shop.Main("shipping")) }
