package store

import (
	"context"
	"fmt"
)

// ControlGeneration is the control plane's generation: a number that grows with every committed
// change to hosts, humans, servers, tools, grants, agents, consents or upstream tokens (not with
// audit entries, OAuth state or outbox work). Readers cache those objects against it.
func (s *sqlStore) ControlGeneration(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.q().queryRow(ctx, "SELECT n FROM control_generation WHERE id = 1").Scan(&n); err != nil {
		return 0, fmt.Errorf("read the control-plane generation: %w", err)
	}
	return n, nil
}

// controlTx is writeTx for changes to the control plane's objects: the generation grows in the
// same transaction, so a reader never pairs a new generation with old data or the reverse.
func (s *sqlStore) controlTx(ctx context.Context, fn func(querier) error) error {
	return s.db.writeTx(ctx, func(q querier) error {
		if err := fn(q); err != nil {
			return err
		}
		return advanceGeneration(ctx, q)
	})
}

// advanceGeneration grows the control-plane generation, inside the transaction that changed it.
func advanceGeneration(ctx context.Context, q querier) error {
	if _, err := q.exec(ctx, "UPDATE control_generation SET n = n + 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("advance the control-plane generation: %w", err)
	}
	return nil
}
