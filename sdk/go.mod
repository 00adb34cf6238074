module github.com/herald-ws/herald/sdk

go 1.26.0

require (
	github.com/gorilla/websocket v1.5.3
	golang.org/x/crypto v0.59.0
)

require golang.org/x/sys v0.50.0 // indirect
