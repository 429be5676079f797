// Command homeroomctl drives Homeroom's API from a terminal or a script:
// declare classes, bring them Up and Down (optionally waiting), look at
// them, and fetch what was collected.
//
// Exit codes: 0 ok; 1 usage or bad input; 2 the server refused (4xx); 3
// server or network error (5xx, unreachable); 4 --wait timed out; 5 the
// class ended Failed while waiting.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv))
}
