//go:build !embedengine && !linux

package main

// setProcessName has nothing to do: the name is the executable's.
func setProcessName(string) {}
