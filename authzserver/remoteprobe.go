package authzserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrRemoteCertificate marks a remote SpiceDB whose TLS certificate this gateway does not trust
// (not signed by a CA it was given, or not for the name it was dialled by).
var ErrRemoteCertificate = errors.New("the remote SpiceDB's TLS certificate is not trusted")

// probeTimeout bounds the first request to a remote SpiceDB at start-up.
const probeTimeout = 30 * time.Second

// ProbeTLS makes the first request to a remote SpiceDB (reading its schema) and reports a TLS
// handshake its certificate failed as ErrRemoteCertificate, with the verifier's reason. Other
// failures are not reported here: start-up's next requests report them as before.
func (s *SpiceDB) ProbeTLS(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := s.schemas.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err == nil || status.Code(err) != codes.Unavailable {
		return nil
	}
	msg := status.Convert(err).Message()
	for _, marker := range []string{"x509: ", "tls: "} {
		if i := strings.Index(msg, marker); i >= 0 {
			return fmt.Errorf("%w: %s", ErrRemoteCertificate, strings.TrimRight(strings.ReplaceAll(msg[i:], `\"`, `"`), `"`))
		}
	}
	return nil
}
