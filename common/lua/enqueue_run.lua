-- placeholder, replaced by the enqueue work
return 0
