-- wrk script: GET the unread messages of one machine, with basic auth.
wrk.headers["Authorization"] = "Basic " .. os.getenv("BUS_AUTH_B64")
wrk.path = os.getenv("BUS_GET_PATH")
