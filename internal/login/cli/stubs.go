package cli

import (
	"context"
	"errors"
)

func setup(ctx context.Context, args []string, env Env) error  { return errors.New("TODO") }
func whoami(ctx context.Context, args []string, env Env) error { return errors.New("TODO") }
