def draw(r,p):
    pass
