module github.com/herald-ws/herald/deploy/test

go 1.26.0

require github.com/gorilla/websocket v1.5.3
