package connector

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
)

// NetReason classifies a network error as a check Reason: refused (nothing
// listens, or the peer reset the connection), timeout, or unreachable.
func NetReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ENOENT):
		return ReasonRefused
	}
	return ReasonUnreachable
}
