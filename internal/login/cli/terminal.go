package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"
)

// TerminalPassword reads a password from the terminal without echo.
func TerminalPassword(ctx context.Context, prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("--password is empty and stdin is not a terminal")
	}
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	return string(b), nil
}
