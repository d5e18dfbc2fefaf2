// Package all registers every built-in connection type:
//
//	import _ "github.com/connkit/connkit/connector/all"
package all

import (
	_ "github.com/connkit/connkit/connector/edgex"     // edgex
	_ "github.com/connkit/connkit/connector/httppush"  // httppush
	_ "github.com/connkit/connkit/connector/mqtt"      // mqtt
	_ "github.com/connkit/connkit/connector/nng"       // nng
	_ "github.com/connkit/connkit/connector/sql"       // sql
	_ "github.com/connkit/connkit/connector/websocket" // websocket
)
