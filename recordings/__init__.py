"""Call recordings: collect, transcode, encrypt, store, link to calls and leads."""
