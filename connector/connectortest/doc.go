// Package connectortest helps test connector types and the code that uses
// them. Fake is a connector.Type with simulated peers, for unit tests of a
// Manager or an engine.
package connectortest
