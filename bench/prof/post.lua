-- wrk: POST $BODY with the key in $KEY (bench/prof).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.body = os.getenv("BODY")
