"""What users would run instead of Lanscatter, each as `run_baseline(...) -> per-host done times`.

Run inside an `Emulation`: plain HTTP fan-out from the origin (`http_fanout`) and a BitTorrent swarm
(`bittorrent`: aria2c and opentracker from Debian, DHT, local discovery and peer exchange off).
"""
