"""The scalar engine in a few lines: build an expression, backpropagate, read the gradients."""
from tinygrad_cnn import Value

a = Value(2.0, name="a")
b = Value(-3.0, name="b")
c = a * b + a ** 2          # c = ab + a^2 = -2
d = c.tanh() + c.sigmoid()
d.backward()

print(f"c = {c.data:.6f}   d = {d.data:.6f}")
print(f"dd/da = {a.grad:.6f}   dd/db = {b.grad:.6f}")
d.backward()                # gradients accumulate, as in PyTorch
print(f"after a second backward: dd/da = {a.grad:.6f} (twice the first)")
d.zero_grad()
print(f"after zero_grad: dd/da = {a.grad:.6f}")
