-- wrk script: every request is a 100 KiB POST
wrk.method = "POST"
wrk.body = string.rep("p", 102400)
wrk.headers["Content-Type"] = "application/octet-stream"
