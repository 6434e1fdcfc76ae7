-- wrk script: POST /post with a 1 KiB body (the server answers the body length).
-- Usage: wrk -s tools/bench/lua/post.lua http://127.0.0.1:PORT/
wrk.method = "POST"
wrk.path = "/post"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
