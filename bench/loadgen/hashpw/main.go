// Command hashpw prints a bcrypt hash of its argument, for the
// staticPasswords entry of the Dex-format configs that bench/refresh.sh
// writes (Dex and gatehouse both read it).
//
//	go run ./bench/loadgen/hashpw PASSWORD
package main

import (
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: hashpw PASSWORD")
		os.Exit(2)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(os.Args[1]), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hashpw:", err)
		os.Exit(1)
	}
	fmt.Println(string(h))
}
