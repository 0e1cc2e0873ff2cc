// Package archtest holds no code: its tests check the import rules between the module's
// packages, so that a change that breaks one fails like any other test.
package archtest
