package connector

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
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

// BadPort says what is wrong with port, the port of a host:port or URL a
// prop gives ("" for none), or returns "" if it is one: 1 to 65535.
func BadPort(port string) string {
	if port == "" {
		return ""
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "the port is not a number from 1 to 65535"
	}
	return ""
}
