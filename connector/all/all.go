// Package all registers every built-in connection type:
//
//	import _ "github.com/connkit/connkit/connector/all"
package all

import (
	_ "github.com/connkit/connkit/connector/mqtt" // mqtt
	_ "github.com/connkit/connkit/connector/sql"  // sql
)
