"""DNS interception, sans-IO: the answering logic (intercept), TCP framing, resolv.conf."""
