package authzserver

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// readOnlyMethods are the gRPC methods clients of the exposed SpiceDB API (zed, authzed-go)
// may call: checks, lookups, reads, expansion, schema reads and reflection, Watch, health and
// server reflection. Every other method (WriteRelationships, DeleteRelationships, WriteSchema,
// bulk imports, relationship counters, and any method a later SpiceDB adds) is refused.
var readOnlyMethods = map[string]bool{
	"/authzed.api.v1.PermissionsService/CheckPermission":                    true,
	"/authzed.api.v1.PermissionsService/CheckBulkPermissions":               true,
	"/authzed.api.v1.PermissionsService/ExpandPermissionTree":               true,
	"/authzed.api.v1.PermissionsService/LookupResources":                    true,
	"/authzed.api.v1.PermissionsService/LookupSubjects":                     true,
	"/authzed.api.v1.PermissionsService/ReadRelationships":                  true,
	"/authzed.api.v1.PermissionsService/ExportBulkRelationships":            true,
	"/authzed.api.v1.SchemaService/ReadSchema":                              true,
	"/authzed.api.v1.SchemaService/ReflectSchema":                           true,
	"/authzed.api.v1.SchemaService/ComputablePermissions":                   true,
	"/authzed.api.v1.SchemaService/DependentRelations":                      true,
	"/authzed.api.v1.SchemaService/DiffSchema":                              true,
	"/authzed.api.v1.WatchService/Watch":                                    true,
	"/authzed.api.v1.ExperimentalService/BulkCheckPermission":               true,
	"/authzed.api.v1.ExperimentalService/BulkExportRelationships":           true,
	"/authzed.api.v1.ExperimentalService/ExperimentalReflectSchema":         true,
	"/authzed.api.v1.ExperimentalService/ExperimentalComputablePermissions": true,
	"/authzed.api.v1.ExperimentalService/ExperimentalDependentRelations":    true,
	"/authzed.api.v1.ExperimentalService/ExperimentalDiffSchema":            true,
	"/authzed.api.v1.ExperimentalService/ExperimentalCountRelationships":    true,
	"/grpc.health.v1.Health/Check":                                          true,
	"/grpc.health.v1.Health/Watch":                                          true,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":             true,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo":        true,
}

// readOnlyRefusal is what a client of the exposed API is told when it tries to change
// something.
const readOnlyRefusal = "the SpiceDB API trustgate exposes is read-only (%s is a write): trustgate's store is the " +
	"source of truth for every relationship, and SpiceDB is reconciled from it. Change humans, grants, " +
	"agents, consents and tools with trustgate's admin API (/api/v1, or `trustgate admin`)"

// readOnlyGuard lets trustgate's own connection (the one presenting internalKey) call every
// method, and everyone else only readOnlyMethods. It runs after SpiceDB's own authentication,
// so the key presented is already known to be one of the server's keys.
type readOnlyGuard struct {
	internalKey []byte
}

func (g readOnlyGuard) allowed(ctx context.Context, method string) error {
	if readOnlyMethods[method] || g.isInternal(ctx) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, readOnlyRefusal, method[strings.LastIndexByte(method, '/')+1:])
}

// isInternal reports whether the call presents trustgate's own key, compared in constant time.
func (g readOnlyGuard) isInternal(ctx context.Context) bool {
	for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		scheme, token, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "bearer") &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), g.internalKey) == 1 {
			return true
		}
	}
	return false
}

func (g readOnlyGuard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := g.allowed(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (g readOnlyGuard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := g.allowed(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
