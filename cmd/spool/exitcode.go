package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

// Exit codes of the spool command. They are part of its interface: scripts
// branch on them, so they are listed in `spool --help` and docs/cli.md.
const (
	exitOK           = 0 // success
	exitError        = 1 // an error (from the server, the network, or local I/O)
	exitUsage        = 2 // bad flags or arguments
	exitNotFound     = 3 // the topic, subscription, dead letter, or registry subject, version or schema does not exist
	exitTimeout      = 4 // consume --timeout ended before --count messages arrived
	exitUnavailable  = 5 // a retriable condition (topic full, server unavailable) persisted after the SDK's retries
	exitIncompatible = 6 // schema check (or schema register) found the schema incompatible with its subject
)

const exitCodesHelp = `Exit codes:
  0  success
  1  error (server or network)
  2  usage error (bad flags or arguments)
  3  not found (topic, subscription, dead letter of dlq peek, or a schema registry's subject, version or schema)
  4  timed out (consume --timeout ended before --count messages arrived)
  5  a retriable condition persisted after the SDK's retries (topic full, server unavailable; schema registry unreachable)
  6  incompatible (schema check, or schema register refused by the subject's compatibility level)`

// usageError is a bad flag, argument or flag value. cmdPath names the
// command whose --help explains the correct usage.
type usageError struct {
	cmdPath string
	err     error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usage error of cmd.
func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmdPath: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// asUsage marks err (if any) as a usage error of cmd.
func asUsage(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{cmdPath: cmd.CommandPath(), err: err}
}

// notFoundError: something other than a topic or subscription (which the
// server reports) does not exist.
type notFoundError struct{ what string }

func (e *notFoundError) Error() string { return e.what }

// timeoutError: consume --timeout ended before --count messages arrived.
type timeoutError struct{ got, want int }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("timed out after %d of %d messages", e.got, e.want)
}

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	var ue *usageError
	var te *timeoutError
	var nf *notFoundError
	var own interface{ exitCode() int }
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &own):
		return own.exitCode()
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, client.ErrTopicNotFound), errors.Is(err, client.ErrSubscriptionNotFound), errors.As(err, &nf):
		return exitNotFound
	case errors.As(err, &te):
		return exitTimeout
	case client.IsRetriable(err), errors.Is(err, client.ErrDeliveryTimeout):
		return exitUnavailable
	}
	return exitError
}

// errorText is the message printed after "spool: ". An error from the server
// reads "<message> (<code>)", e.g. `topic "x" not found (topic_not_found)`,
// wherever it sits in the chain of wrapped errors.
func errorText(err error) string {
	s := err.Error()
	var ce *client.Error
	if errors.As(err, &ce) {
		friendly := ce.Code
		if ce.Message != "" {
			friendly = ce.Message + " (" + ce.Code + ")"
		}
		s = strings.Replace(s, ce.Error(), friendly, 1)
	}
	return strings.TrimPrefix(s, "client: ")
}
