"""Network families as plain `nn.Module`s mapping x -> outputs; none of them knows about Lightning."""
