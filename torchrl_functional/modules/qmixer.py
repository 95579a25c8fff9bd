"""Drop-in replacement for ``torchrl.objectives.QMixerLoss``; the math is
:func:`torchrl_functional.functional.qmixer_loss`."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import dispatch
from torchrl.objectives.multiagent import qmixer as _trl

from ..functional._offpolicy import chosen_action_value
from ..functional.keys import QMixerKeys
from ..functional.qmixer import qmixer_loss
from ._binding import FunctionalCallMixin, params_context
from ._common import PRIVATE
from ._offpolicy import call_loss, transition_inputs, write_priority

__all__ = ["QMixerLoss"]


class QMixerLoss(FunctionalCallMixin, _trl.QMixerLoss):
    """Drop-in ``torchrl.objectives.QMixerLoss`` computed by :func:`~torchrl_functional.functional.qmixer_loss`.

    ``forward`` runs the agents' Q-network, picks each agent's chosen ``Q_i(s, a_i)``, runs the
    mixer on them, and does the same with the target parameters at ``s'`` (greedy actions); as
    TorchRL, it writes the priority ``td_error`` into the input TensorDict.
    """

    def _mixed(self, td: TensorDictBase, local_params, mixer_params, replayed: bool) -> torch.Tensor:
        """``Q_tot``: the mixer over the agents' Q-values at the replayed action of ``td`` (or the
        agents' greedy values, as the local network writes them)."""
        tk = self.tensor_keys
        local, mixer = self.local_value_network, self.mixer_network
        data = td
        td = td.select(*dict.fromkeys([*local.in_keys, *mixer.in_keys]), strict=False)
        with params_context(self, local_params, local):
            td = local(td)
        if replayed:
            action_value = td.get(tk.action_value)  # [*B, n_agents, N]
            space = "categorical" if self.action_space == "categorical" else "one_hot"
            chosen = chosen_action_value("QMixerLoss", data, tk.action, action_value, action_value.shape[:-1], space)
            td.set(tk.local_value, chosen)
        with params_context(self, mixer_params, mixer):
            td = mixer(td)
        return td[tk.global_value]  # a KeyError naming the entry if the mixer writes another one

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        tk = self.tensor_keys
        value = self._mixed(tensordict, self.local_value_network_params, self.mixer_network_params, True)
        inputs = transition_inputs(self, tensordict)
        inputs.set((PRIVATE, "global_value"), value)
        with torch.no_grad():
            inputs.set(("next", PRIVATE, "global_value"), self._mixed(
                tensordict.get("next"), self.target_local_value_network_params, self.target_mixer_network_params,
                False))
        # TorchRL's QMixerLoss has the reduction/mask/priority attributes of every LossModule but
        # neither masks nor weights and always averages: so does ours, whatever they hold
        out = call_loss(qmixer_loss, self, inputs, tensordict, QMixerKeys, "global_value",
                        reduction="mean", loss_mask_key=None, use_prioritized_weights=False)
        write_priority(tensordict, tk.priority, out.pop("td_error"))
        return out
