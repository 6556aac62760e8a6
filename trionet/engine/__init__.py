"""The Trio shell: tasks that own the frame link, host sockets and timers."""
