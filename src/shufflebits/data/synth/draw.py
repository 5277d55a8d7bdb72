"""Drawing one pedestrian with Pillow: the figure's coordinate frame, body parts, clothes and bags.

A person is drawn in person units (``u`` down from the head top to the feet,
``v`` sideways) seen from the front, the back or one side (a backpack is a box
from behind, straps from the front) at one phase of the walking cycle. Drawing
draws nothing at random: everything random is decided before, by the caller.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from .palette import shade
from .people import Person

STRAP = 0.03  # width of bag and backpack straps, person units: a few pixels even at 128x64


class Figure:
    """Pillow drawing in person units: u down from the head top (0) to the feet (1), v sideways."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, top: float, height: float, facing: int):
        self.draw, self.cx, self.top, self.h, self.f = draw, cx, top, height, facing

    def pt(self, v: float, u: float) -> tuple[float, float]:
        return self.cx + self.f * v * self.h, self.top + u * self.h

    def ellipse(self, v, u, rv, ru, fill) -> None:
        x, y = self.pt(v, u)
        self.draw.ellipse([x - rv * self.h, y - ru * self.h, x + rv * self.h, y + ru * self.h], fill=fill)

    def poly(self, points, fill) -> None:
        self.draw.polygon([self.pt(v, u) for v, u in points], fill=fill)

    def quad(self, u0, left0, right0, u1, left1, right1, fill) -> None:
        """A four-sided shape with a horizontal top edge at u0 and bottom edge at u1."""
        self.poly([(left0, u0), (right0, u0), (right1, u1), (left1, u1)], fill)

    def limb(self, a, b, wa, wb, fill, round_end: bool = True) -> None:
        """A tapered segment from a=(v, u) to b with full widths wa, wb, round at b."""
        (xa, ya), (xb, yb) = self.pt(*a), self.pt(*b)
        length = max(math.hypot(xb - xa, yb - ya), 1e-6)
        nx, ny = -(yb - ya) / length, (xb - xa) / length
        ha, hb = wa * self.h / 2, wb * self.h / 2
        self.draw.polygon(
            [
                (xa + nx * ha, ya + ny * ha),
                (xb + nx * hb, yb + ny * hb),
                (xb - nx * hb, yb - ny * hb),
                (xa - nx * ha, ya - ny * ha),
            ],
            fill=fill,
        )
        if round_end:
            self.draw.ellipse([xb - hb, yb - hb, xb + hb, yb + hb], fill=fill)


def draw_person(fig: Figure, p: Person, view: int, phase: float) -> None:
    """Draw ``p`` seen from the front (0), back (1) or side (2, 3) at walking ``phase``."""
    _Body(fig, p, view, phase).draw()


class _Body:
    """The proportions of one person in one view; each method draws one part, in painter's order."""

    def __init__(self, fig: Figure, p: Person, view: int, phase: float):
        self.fig, self.p, self.a, self.view = fig, p, p.attributes, view
        self.side = view >= 2
        self.hs, self.hip, self.w = p.head, p.hip, p.width
        self.head_u = 0.068 * self.hs
        self.shoulder_u = 0.128 * self.hs + 0.02
        self.sw = (0.068 if self.side else 0.108) * self.w  # half widths: shoulders, hips, waist
        self.hw = (0.07 if self.side else 0.092) * self.w * (1.08 if self.a["gender"] else 1.0)
        self.ww = min(self.sw, self.hw) * 0.92
        self.stride = p.gait * np.sin(phase)
        self.pack_strap = shade(p.backpack_rgb, 0.8)

    def draw(self) -> None:
        """Far parts first: what is drawn later covers what was drawn before."""
        if self.side:
            self._draw_side()
        else:
            self._draw_front_or_back()

    def _draw_side(self) -> None:
        fig, p, a, sw, shoulder_u = self.fig, self.p, self.a, self.sw, self.shoulder_u
        if a["backpack"]:
            pack = [(-sw - 0.11, shoulder_u + 0.01), (-sw + 0.015, shoulder_u - 0.01), (-sw + 0.015, shoulder_u + 0.3)]
            fig.poly([*pack, (-sw - 0.12, shoulder_u + 0.29)], p.backpack_rgb)
        self.arm(1, -self.stride, far=True)
        self.legs((-1, 1))
        self.torso()
        if a["backpack"]:
            strap = ((0.01, shoulder_u + 0.005), (-0.02, shoulder_u + 0.18))
            fig.limb(*strap, STRAP, STRAP, self.pack_strap, round_end=False)
        if a["bag"]:
            self.bag_strap(1)
            self.bag_box(p.bag_side)
        self.head()
        wrist = self.arm(1, self.stride)
        if a["handbag"]:
            self.handbag(wrist)

    def _draw_front_or_back(self) -> None:
        fig, p, a, sw, shoulder_u = self.fig, self.p, self.a, self.sw, self.shoulder_u
        if self.view == 0 and a["backpack"]:  # the pack behind the body shows above and beside the shoulders
            fig.quad(
                shoulder_u - 0.035, -sw - 0.02, sw + 0.02, shoulder_u + 0.22, -sw - 0.035, sw + 0.035, p.backpack_rgb
            )
        self.legs((-1, 1))
        self.torso()
        if self.view == 0:
            if a["backpack"]:
                for sign in (-1, 1):
                    top, bottom = (sign * sw * 0.55, shoulder_u), (sign * sw * 0.7, shoulder_u + 0.24)
                    fig.limb(top, bottom, STRAP, STRAP, p.backpack_rgb, round_end=False)
            if a["bag"]:
                self.bag_strap(p.bag_side)
        wrists = {sign: self.arm(sign, self.stride * sign) for sign in (-1, 1)}
        if self.view == 1:
            if a["backpack"]:
                self.backpack_back()
            if a["bag"]:
                self.bag_strap(p.bag_side)
        if a["bag"]:
            self.bag_box(p.bag_side)
        self.head()
        if a["handbag"]:
            self.handbag(wrists[p.handbag_side])

    def legs(self, order) -> None:
        """Legs, trousers or shorts, and shoes; in a side view the far leg (sign < 0) is darker."""
        fig, p, a, side, hip, w, stride = self.fig, self.p, self.a, self.side, self.hip, self.w, self.stride
        dark_down = shade(p.down_rgb, 0.72)
        lower_end = 0.93 if a["down"] == 0 else 0.7  # long / short lower body
        for sign in order:
            if side:
                knee, ankle = (sign * 0.09 * stride, 0.74), (sign * 0.17 * stride, 0.95 - 0.02 * abs(stride))
                hip_pt = (0.0, hip)
            else:
                lift = 0.025 * max(0.0, sign * stride)
                knee, ankle = (sign * 0.052 * w, 0.73 - lift), (sign * 0.05, 0.95 - lift)
                hip_pt = (sign * 0.045 * w, hip)
            far = side and sign < 0
            cloth = dark_down if far else p.down_rgb
            skin = shade(p.skin, 0.85) if far else p.skin
            fig.limb(hip_pt, knee, 0.085, 0.062, skin)
            fig.limb(knee, ankle, 0.062, 0.048, skin)
            if a["clothes"] == 1 and lower_end >= knee[1]:  # trousers
                fig.limb(hip_pt, knee, 0.095, 0.07, cloth)
                t = min(1.0, (lower_end - knee[1]) / (ankle[1] - knee[1]))
                end = (knee[0] + t * (ankle[0] - knee[0]), knee[1] + t * (ankle[1] - knee[1]))
                fig.limb(knee, end, 0.07, 0.058, cloth, round_end=False)
            elif a["clothes"] == 1:  # shorts
                t = (lower_end - hip) / (knee[1] - hip)
                fig.limb(hip_pt, (hip_pt[0] + t * (knee[0] - hip_pt[0]), lower_end), 0.1, 0.09, cloth, round_end=False)
            shoe = shade(p.shoe_rgb, 0.8) if far else p.shoe_rgb
            fig.ellipse(ankle[0] + (0.02 if side else 0.0), ankle[1] + 0.018, 0.045 if side else 0.033, 0.022, shoe)

    def torso(self) -> None:
        """Trouser hips or a dress, the upper garment with its shadow side, then its pattern."""
        fig, p, hip, sw, hw, ww, shoulder_u = self.fig, self.p, self.hip, self.sw, self.hw, self.ww, self.shoulder_u
        if self.a["clothes"] == 1:  # hips of the trousers
            fig.poly([(-hw, hip - 0.05), (hw, hip - 0.05), (hw, hip + 0.06), (-hw, hip + 0.06)], p.down_rgb)
        else:  # a dress / skirt, flared
            dress_hem = 0.86 if self.a["down"] == 0 else 0.7
            fig.poly([(-ww, hip - 0.08), (ww, hip - 0.08), (hw * 1.55, dress_hem), (-hw * 1.55, dress_hem)], p.down_rgb)
        fig.poly(
            [
                (-sw + 0.015, shoulder_u),
                (sw - 0.015, shoulder_u),
                (sw, shoulder_u + 0.03),
                (ww, hip - 0.1),
                (hw, hip + 0.015),
                (-hw, hip + 0.015),
                (-ww, hip - 0.1),
                (-sw, shoulder_u + 0.03),
            ],
            p.up_rgb,
        )
        shadow = [(sw * 0.55, shoulder_u + 0.03), (sw, shoulder_u + 0.03), (ww, hip - 0.1), (hw, hip + 0.015)]
        fig.poly([*shadow, (hw * 0.6, hip + 0.015)], shade(p.up_rgb, 0.84))
        pattern = p.pattern
        if pattern == "stripes":
            u = shoulder_u + 0.04
            while u < hip - 0.01:
                fig.poly([(-ww, u), (ww, u), (ww, u + 0.018), (-ww, u + 0.018)], p.up_alt_rgb)
                u += 0.05
        elif pattern == "vstripes":
            for v in (-0.6, 0.0, 0.6):
                left, right = v * ww - 0.01, v * ww + 0.01
                fig.quad(shoulder_u + 0.02, left, right, hip, left, right, p.up_alt_rgb)
        elif pattern == "band":
            fig.quad(shoulder_u + 0.13, -ww, ww, shoulder_u + 0.18, -ww, ww, p.up_alt_rgb)
        elif pattern == "jacket" and self.view == 0:
            fig.poly([(-0.022, shoulder_u), (0.022, shoulder_u), (0.028, hip), (-0.028, hip)], p.up_alt_rgb)
        elif pattern == "logo" and self.view == 0:
            fig.ellipse(0.0, shoulder_u + 0.1, 0.035, 0.03, p.up_alt_rgb)
        elif pattern == "dots":  # a printed fabric
            for row, u in enumerate(np.arange(shoulder_u + 0.05, hip - 0.03, 0.045)):
                for v in np.arange(-ww + 0.02 + 0.0225 * (row % 2), ww - 0.01, 0.045):
                    fig.ellipse(float(v), float(u), 0.009, 0.009, p.up_alt_rgb)
        elif pattern == "check":  # a checked shirt: crossing bands
            for u in np.arange(shoulder_u + 0.04, hip - 0.01, 0.06):
                fig.quad(float(u), -ww, ww, float(u) + 0.014, -ww, ww, p.up_alt_rgb)
            for v in np.arange(-ww + 0.02, ww, 0.05):
                left, right = float(v) - 0.007, float(v) + 0.007
                fig.quad(shoulder_u + 0.03, left, right, hip, left, right, p.up_alt_rgb)

    def arm(self, sign: int, swing: float, far: bool = False) -> tuple[float, float]:
        """One arm with its sleeve and hand; returns the wrist, where a handbag hangs."""
        fig, p, side, sw, shoulder_u = self.fig, self.p, self.side, self.sw, self.shoulder_u
        shoulder = (0.0 if side else sign * (sw - 0.012), shoulder_u + 0.025)
        if side:
            elbow = (-0.06 * swing * sign, shoulder_u + 0.16)
            wrist = (-0.14 * swing * sign, self.hip - 0.01)
        else:
            elbow = (sign * (sw + 0.018), shoulder_u + 0.16)
            wrist = (sign * (sw + 0.022), self.hip - 0.01 - 0.02 * abs(swing))
        skin = shade(p.skin, 0.85) if far else p.skin
        sleeve = shade(p.up_rgb, 0.75) if far else p.up_rgb
        fig.limb(shoulder, elbow, 0.058, 0.05, skin)
        fig.limb(elbow, wrist, 0.05, 0.042, skin)
        if self.a["up"] == 0:  # long sleeves
            fig.limb(shoulder, elbow, 0.064, 0.056, sleeve)
            fig.limb(elbow, wrist, 0.056, 0.048, sleeve, round_end=False)
        else:
            mid = (shoulder[0] + 0.55 * (elbow[0] - shoulder[0]), shoulder[1] + 0.55 * (elbow[1] - shoulder[1]))
            fig.limb(shoulder, mid, 0.066, 0.06, sleeve, round_end=False)
        fig.ellipse(wrist[0], wrist[1] + 0.012, 0.022, 0.025, skin)
        return wrist

    def head(self) -> None:
        """Neck, face or back of the head, hair (long hair falls beside the face) and hat."""
        fig, p, a, view, side, hs, head_u = self.fig, self.p, self.a, self.view, self.side, self.hs, self.head_u
        if a["hair"] == 1 and view == 0:  # long hair falls beside the face
            fig.poly([(-0.055 * hs, head_u), (0.055 * hs, head_u), (0.062, 0.22), (-0.062, 0.22)], p.hair_rgb)
        neck = ((0.0, head_u + 0.03), (0.0, self.shoulder_u + 0.01))
        fig.limb(*neck, 0.042, 0.048, p.skin, round_end=False)
        fig.ellipse(0.0, head_u, 0.05 * hs, 0.066 * hs, p.skin)
        if view == 0:
            fig.ellipse(0.0, head_u - 0.02 * hs, 0.052 * hs, 0.05 * hs, p.hair_rgb)
            fig.ellipse(0.0, head_u + 0.012 * hs, 0.042 * hs, 0.05 * hs, p.skin)
            for v in (-0.017, 0.017):
                fig.ellipse(v * hs, head_u + 0.008 * hs, 0.006, 0.005, shade(p.skin, 0.45))
        elif view == 1:
            fig.ellipse(0.0, head_u - 0.004, 0.052 * hs, 0.064 * hs, p.hair_rgb)
        else:
            fig.ellipse(-0.012 * hs, head_u - 0.008, 0.047 * hs, 0.06 * hs, p.hair_rgb)
            fig.ellipse(0.052 * hs, head_u + 0.02, 0.01, 0.012, p.skin)  # nose
        if a["hair"] == 1 and view != 0:
            back = -0.02 if side else 0.0
            right = back + (0.02 if side else 0.05) * hs
            fig.quad(head_u, back - 0.05 * hs, right, 0.24, back - 0.06, back + 0.06, p.hair_rgb)
        if a["hat"]:  # a crown covering the top of the head and a wide brim, seen from every side
            fig.ellipse(0.0, head_u - 0.04 * hs, 0.062 * hs, 0.05 * hs, p.hat_rgb)
            brim = (-0.04, 0.1) if side else (-0.085, 0.085)
            left, right = brim[0] * hs, brim[1] * hs
            fig.quad(head_u - 0.03 * hs, left, right, head_u - 0.01 * hs, left, right, shade(p.hat_rgb, 0.8))

    def backpack_back(self) -> None:
        """A backpack seen from behind: a box with a pocket."""
        fig, p, w, shoulder_u = self.fig, self.p, self.w, self.shoulder_u
        fig.quad(shoulder_u - 0.01, -0.1 * w, 0.1 * w, shoulder_u + 0.3, -0.105 * w, 0.105 * w, p.backpack_rgb)
        pocket = shade(p.backpack_rgb, 0.75)
        fig.quad(shoulder_u + 0.18, -0.07 * w, 0.07 * w, shoulder_u + 0.27, -0.07 * w, 0.07 * w, pocket)

    def bag_strap(self, sign: int) -> None:
        """A shoulder bag's strap across the chest, in the bag's colour."""
        ends = ((sign * self.sw * 0.7, self.shoulder_u + 0.005), (-sign * self.hw, self.hip - 0.03))
        self.fig.limb(*ends, STRAP, STRAP, shade(self.p.bag_rgb, 0.9), round_end=False)

    def bag_box(self, sign: int) -> None:
        v = -sign * (self.hw + 0.04) if not self.side else sign * 0.03
        self.fig.quad(self.hip - 0.08, v - 0.065, v + 0.065, self.hip + 0.07, v - 0.07, v + 0.07, self.p.bag_rgb)
        flap = shade(self.p.bag_rgb, 0.75)
        self.fig.quad(self.hip - 0.08, v - 0.065, v + 0.065, self.hip - 0.04, v - 0.067, v + 0.067, flap)

    def handbag(self, wrist: tuple[float, float]) -> None:
        """A handbag hanging from the wrist: handles, then a large body below the hand."""
        v, u = wrist
        self.fig.limb((v - 0.03, u), (v - 0.03, u + 0.035), 0.012, 0.012, shade(self.p.handbag_rgb, 0.6), False)
        self.fig.limb((v + 0.03, u), (v + 0.03, u + 0.035), 0.012, 0.012, shade(self.p.handbag_rgb, 0.6), False)
        self.fig.quad(u + 0.03, v - 0.065, v + 0.065, u + 0.17, v - 0.075, v + 0.075, self.p.handbag_rgb)
